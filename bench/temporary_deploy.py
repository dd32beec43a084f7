"""`wrangler deploy --temporary` versus `mayfly deploy --temporary`, against the same server.

Both start with no credentials and no cache, at the server's default proof-of-work (k=1000,
g=2000), deploy examples/hello and exit; runs alternate so that both see the same machine. Prints
the median wall time of each and their ratio, measured in the same run.

    .venv/bin/python bench/temporary_deploy.py [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


deploy_bench = load("deploy_bench", ROOT / "bench" / "deploy.py")
harness = load("compat_harness", ROOT / "tests" / "compat" / "conftest.py")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    wrangler_times: list[float] = []
    mayfly_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with deploy_bench.mayfly_server(workdir) as (api_url, _workers_port):
            for run in range(args.runs):
                home = workdir / f"wrangler-home-{run}"
                (home / "tmp").mkdir(parents=True)
                harness.seed_update_check(home / "tmp")
                project = workdir / f"wrangler-project-{run}"
                shutil.copytree(ROOT / "examples" / "hello", project)
                env = harness.wrangler_environment(
                    home, {"CLOUDFLARE_API_BASE_URL": f"{api_url}/client/v4"}
                )
                command = [str(harness.NODE), str(harness.WRANGLER_JS), "deploy", "--temporary"]
                wrangler_times.append(timed(command, project, env))

                mayfly_home = workdir / f"mayfly-home-{run}"
                mayfly_home.mkdir()
                env = deploy_bench.clean_env(
                    HOME=str(mayfly_home), XDG_CONFIG_HOME=str(mayfly_home / ".config")
                )
                command = [str(deploy_bench.MAYFLY), "deploy", "--temporary", "--json",
                           "--api-url", api_url]  # fmt: skip
                mayfly_times.append(timed(command, ROOT / "examples" / "hello", env))
                print(
                    f"  run {run + 1}: wrangler {wrangler_times[-1]:.2f} s, "
                    f"mayfly {mayfly_times[-1]:.2f} s",
                    flush=True,
                )
    wrangler, mayfly = statistics.median(wrangler_times), statistics.median(mayfly_times)
    print(f"\nMedians over {args.runs} runs, first deploy with a new temporary account")
    print(f"  wrangler deploy --temporary   {wrangler:6.2f} s")
    print(f"  mayfly deploy --temporary     {mayfly:6.2f} s")
    print(f"  wrangler ÷ mayfly             {wrangler / mayfly:6.2f}")


if __name__ == "__main__":
    main()
