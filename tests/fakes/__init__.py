"""Stand-ins at the process and network boundaries: fake workerd binaries, a fake control plane."""
