"""What this node runs and how it reports: role, cluster, logs, metrics."""

from __future__ import annotations

from mayfly.settings_table.setting import Setting, parse_bool

NODES: tuple[Setting, ...] = (
    Setting(
        "runtime", True, "Start the workerd data plane (disable for API-only nodes).", parse_bool
    ),
    Setting(
        "role",
        "all",
        "What this node runs: all (API, pages, reaper and data plane), api (no data plane), "
        "dataplane (shards and the Workers listener only, asking --control-plane-url).",
    ),
    Setting(
        "cluster_secret",
        "",
        "Secret of the internal API shared by API replicas and data-plane nodes; default a "
        "per-start secret (internal API on loopback only). Required with --internal-listen and "
        "--role dataplane.",
    ),
    Setting(
        "internal_listen",
        "",
        "host:port of the internal API, for data-plane nodes on other machines (private network "
        "only); default a random loopback port.",
    ),
    Setting(
        "control_plane_url",
        "",
        "With --role dataplane: the control plane's internal API, http://host:port (an API "
        "replica's --internal-listen, or a proxy in front of several).",
    ),
    Setting(
        "ack_timeout",
        2.0,
        "Seconds an API replica waits for every live data-plane node to acknowledge an "
        "invalidation before it marks the silent ones (they drop their route caches).",
        float,
    ),
    Setting("log_level", "info", "Log level: debug, info, warning, error."),
    Setting(
        "log_format",
        "text",
        "Log format: text (one readable line per entry) or json (one JSON object per line: "
        "time, level, logger, message and the entry's extra fields).",
    ),
    Setting(
        "metrics_port",
        0,
        "Port of the Prometheus metrics (/metrics), on its own listener at --host; 0: off.",
        int,
    ),
)
