"""`wrangler deploy --temporary` versus `mayfly deploy --temporary`, against the same server.

Both start with no credentials and no cache, deploy examples/hello and exit; runs alternate so
that both see the same machine. Prints the median wall time of each and their ratio, measured in
the same run.

The proof of work adapts to provisioning pressure, so each first deploy is measured twice, every
time on a fresh server: idle (the minimum work) and under a provisioning flood (pow_busy_address
accounts just created from the same address: the maximum, k=1000, g=2000).

Then, on one more server, an agent's inner loop: a cached redeploy of the same project, `mayfly
deploy` (the cached temporary account) against `wrangler deploy` (that account's token), alternated
`--redeploys` times: median wall and CPU time (user + system, the child's) and mayfly ÷ wrangler.
And the CLI's start-up: the import time of `mayfly --help` and `mayfly whoami` as `python -X
importtime` reports it (the cumulative times of the imports the command makes after Python's own
start-up, summed; median and minimum of --redeploys runs), with their wall times.

    .venv/bin/python bench/temporary_deploy.py [--runs 3] [--redeploys 10]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import httpx

from mayfly.sdk import pow

ROOT = Path(__file__).resolve().parents[1]


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(ROOT))  # the compat harness imports tests.serve
deploy_bench = load("deploy_bench", ROOT / "bench" / "deploy.py")
harness = load("compat_harness", ROOT / "tests" / "compat" / "conftest.py")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    return timed_cpu(command, cwd, env)[0]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_cpu(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the command's and its children's) of `command`."""
    cpu, start = children_cpu(), time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed, used = time.perf_counter() - start, children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, used


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


def redeploys(workdir: Path, api_url: str, runs: int) -> dict[str, list[tuple[float, float]]]:
    """`mayfly deploy` with its cached temporary account, and `wrangler deploy` with that account's
    token, of the same project to the same Worker, alternated; (wall, cpu) of each run."""
    home = workdir / "mayfly-home-redeploy"
    home.mkdir()
    env = deploy_bench.clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    project = workdir / "mayfly-project-redeploy"
    shutil.copytree(ROOT / "examples" / "hello", project)
    mayfly = [str(deploy_bench.MAYFLY), "deploy", "--api-url", api_url]
    timed([*mayfly, "--temporary"], project, env)  # creates and caches the account
    from mayfly.sdk import TemporaryAccountCache

    account = TemporaryAccountCache(home / ".config" / "mayfly").load(api_url)
    assert account is not None
    wrangler_home = workdir / "wrangler-home-redeploy"
    (wrangler_home / "tmp").mkdir(parents=True)
    harness.seed_update_check(wrangler_home / "tmp")
    wrangler_project = workdir / "wrangler-project-redeploy"
    shutil.copytree(ROOT / "examples" / "hello", wrangler_project)
    wrangler_env = harness.wrangler_environment(
        wrangler_home,
        {
            "CLOUDFLARE_API_BASE_URL": f"{api_url}/client/v4",
            "CLOUDFLARE_API_TOKEN": account.api_token,
            "CLOUDFLARE_ACCOUNT_ID": account.id,
        },
    )
    wrangler = [str(harness.NODE), str(harness.WRANGLER_JS), "deploy"]
    timed(wrangler, wrangler_project, wrangler_env)  # warm: npm's and node's caches on disk
    found: dict[str, list[tuple[float, float]]] = {"mayfly": [], "wrangler": []}
    for _ in range(runs):
        found["mayfly"].append(timed_cpu(mayfly, project, env))
        found["wrangler"].append(timed_cpu(wrangler, wrangler_project, wrangler_env))
    return found


STARTUP_CODE = """import sys
sys.argv = ["mayfly", *sys.argv[1:]]
from mayfly.cli.main import main
main()
"""


def import_ms(args: list[str], cwd: Path, env: dict[str, str], startup: set[str]) -> float:
    """What `python -X importtime` says `mayfly ARGS` imports: the cumulative times of its
    top-level imports (nested ones are inside them), Python's own start-up left out."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", STARTUP_CODE, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    total = 0
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            top_level = not name.startswith("  ")  # nested imports are indented
            if top_level and cumulative.strip().isdigit() and name.strip() not in startup:
                total += int(cumulative)
    return total / 1000


def startup(workdir: Path, api_url: str, runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Import time and wall time of `mayfly --help` and `mayfly whoami` (the cached account)."""
    home = workdir / "mayfly-home-redeploy"
    env = deploy_bench.clean_env(
        HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), MAYFLY_API_URL=api_url
    )
    baseline = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True
    )
    python_startup = {line.split("|")[-1].strip() for line in baseline.stderr.splitlines()}
    found: dict[str, tuple[list[float], list[float]]] = {}
    for args in (["--help"], ["whoami"]):
        imports: list[float] = []
        walls: list[float] = []
        for _ in range(runs):
            imports.append(import_ms(args, ROOT, env, python_startup))
            walls.append(timed([str(deploy_bench.MAYFLY), *args], ROOT, env))
        found[" ".join(args)] = (imports, walls)
    return found


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
    parser.add_argument("--redeploys", type=int, default=10)
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
        workdir = Path(tmp) / "inner-loop"
        workdir.mkdir()
        with deploy_bench.mayfly_server(workdir) as (api_url, _workers_port):
            cached = redeploys(workdir, api_url, args.redeploys)
            started = startup(workdir, api_url, args.redeploys)
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
    print(f"\nMedians over {args.redeploys} runs, a cached redeploy of examples/hello")
    wall = {c: statistics.median(w for w, _ in runs) for c, runs in cached.items()}
    cpu = {c: statistics.median(u for _, u in runs) for c, runs in cached.items()}
    for client in ("wrangler", "mayfly"):
        label = "wrangler deploy (the account's token)" if client == "wrangler" else ""
        label = label or "mayfly deploy (cached temporary account)"
        print(f"  {label:40} {wall[client]:6.2f} s wall, {cpu[client]:6.2f} s CPU")
    print(f"  mayfly ÷ wrangler, wall{'':24} {wall['mayfly'] / wall['wrangler']:6.2f}")
    print(f"  mayfly ÷ wrangler, CPU{'':25} {cpu['mayfly'] / cpu['wrangler']:6.2f}")
    print(f"\nCLI start-up, {args.redeploys} runs (python -X importtime; wall: the mayfly script)")
    for command, (imports, walls) in started.items():
        print(
            f"  mayfly {command:10} imports {statistics.median(imports):6.1f} ms (min "
            f"{min(imports):.1f}), wall {statistics.median(walls) * 1000:6.1f} ms"
        )


if __name__ == "__main__":
    main()
