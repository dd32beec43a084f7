"""`wrangler deploy --temporary` versus `mayfly deploy --temporary`, against the same server.

Both start with no credentials and no cache, deploy examples/hello and exit; runs alternate so
that both see the same machine. Prints the median wall time of each and their ratio, measured in
the same run.

The proof of work adapts to provisioning pressure, so each first deploy is measured twice, every
time on a fresh server: idle (the minimum work) and under a provisioning flood (pow_busy_address
accounts just created from the same address: the maximum, k=1000, g=2000).

    .venv/bin/python bench/temporary_deploy.py [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import httpx

from mayfly.services.temporary import pow

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


FLOOD_ACCOUNTS = 5  # the server's default pow_busy_address: the address's work is the maximum


def wrangler_first_deploy(workdir: Path, api_url: str, label: str) -> float:
    home = workdir / f"wrangler-home-{label}"
    (home / "tmp").mkdir(parents=True)
    harness.seed_update_check(home / "tmp")
    project = workdir / f"wrangler-project-{label}"
    shutil.copytree(ROOT / "examples" / "hello", project)
    env = harness.wrangler_environment(home, {"CLOUDFLARE_API_BASE_URL": f"{api_url}/client/v4"})
    command = [str(harness.NODE), str(harness.WRANGLER_JS), "deploy", "--temporary"]
    return timed(command, project, env)


def mayfly_first_deploy(workdir: Path, api_url: str, label: str) -> float:
    mayfly_home = workdir / f"mayfly-home-{label}"
    mayfly_home.mkdir()
    env = deploy_bench.clean_env(
        HOME=str(mayfly_home), XDG_CONFIG_HOME=str(mayfly_home / ".config")
    )
    command = [str(deploy_bench.MAYFLY), "deploy", "--temporary", "--json", "--api-url", api_url]
    return timed(command, ROOT / "examples" / "hello", env)


def work_asked(api_url: str) -> str:
    challenge = httpx.post(f"{api_url}/client/v4/provisioning/previews/challenge").json()["result"]
    return f"k={challenge['k']} g={challenge['g']}"


def flood(api_url: str, accounts: int) -> None:
    """Provision `accounts` temporary accounts from this address, as fast as they can be solved."""
    base = f"{api_url}/client/v4/provisioning/previews"
    with httpx.Client(timeout=60) as client:
        for _ in range(accounts):
            challenge = client.post(f"{base}/challenge").json()["result"]
            seed = pow.b64url_decode(challenge["seed"])
            checkpoints = base64.b64encode(pow.solve(seed, challenge["k"], challenge["g"]))
            created = client.post(
                base,
                json={
                    "acceptTermsOfService": "yes",
                    "challengeToken": challenge["challengeToken"],
                    "solution": {"checkpoints": checkpoints.decode()},
                },
            )
            created.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {}
    asked: dict[str, str] = {}

    def measure(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for client, first_deploy in (
                ("wrangler", wrangler_first_deploy),
                ("mayfly", mayfly_first_deploy),
            ):
                for state in ("idle", "flood"):
                    workdir = Path(tmp) / f"{run}-{client}-{state}"
                    workdir.mkdir()
                    with deploy_bench.mayfly_server(workdir) as (api_url, _workers_port):
                        if state == "flood":
                            flood(api_url, FLOOD_ACCOUNTS)
                        asked[state] = work_asked(api_url)
                        measure(f"{client} {state}", first_deploy(workdir, api_url, state))
            print(
                f"  run {run + 1}: "
                + ", ".join(f"{key} {values[-1]:.2f} s" for key, values in times.items()),
                flush=True,
            )
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"\nMedians over {args.runs} runs, first deploy with a new temporary account")
    print(f"  work asked: idle {asked['idle']}, under a flood {asked['flood']}")
    for client in ("wrangler", "mayfly"):
        for state in ("idle", "flood"):
            label = f"{client} deploy --temporary ({state})"
            print(f"  {label:40} {median[f'{client} {state}']:6.2f} s")
    for state in ("idle", "flood"):
        ratio = median[f"wrangler {state}"] / median[f"mayfly {state}"]
        print(f"  wrangler ÷ mayfly ({state}){'':20} {ratio:6.2f}")
    for client in ("wrangler", "mayfly"):
        ratio = median[f"{client} flood"] / median[f"{client} idle"]
        print(f"  {client} flood ÷ idle{'':24} {ratio:6.2f}")


if __name__ == "__main__":
    main()
