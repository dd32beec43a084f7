"""Deploy benchmark: what an agent waits for, and what Mayfly costs over bare workerd.

    .venv/bin/python bench/deploy.py [--runs 5] [--seconds 5] [--connections 32]

Starts a real `mayfly serve` (default proof of work, k=1000 g=2000) and prints medians over
`--runs` runs, all measured in this one invocation:
  1. `mayfly deploy --temporary` (the real CLI, a fresh HOME each run) split into proof of work,
     provisioning (the two API calls) and upload → first 200 from the Worker's URL;
  2. a redeploy: from the API's answer to the PUT until the new version answers;
  3. hello-world requests/s through Mayfly (default shards) ÷ a bare single workerd process
     serving the same modules, with the same load generator (wrk when installed, else a Python
     keep-alive client), in the same run; and the CPU time each side spent per request (utime +
     stime from /proc: workerd shards and the `mayfly serve` process, against the bare workerd),
     which a loaded machine distorts far less than requests/s.
Parts 1 (first 200), 2 and 3 need the data plane; without it they are reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAYFLY = ROOT / ".venv" / "bin" / "mayfly"
WORKERD = ROOT / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
EXAMPLE = ROOT / "examples" / "hello"
DATA_PLANE = importlib.util.find_spec("mayfly.runtime.dataplane") is not None
# workers port → pid of the `mayfly serve` answering on it (for CPU per request)
SERVERS: dict[int, int] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def mayfly_server(workdir: Path) -> Iterator[tuple[str, int]]:
    api_port, workers_port = free_port(), free_port()
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            str(MAYFLY),
            "serve",
            "--api-port", str(api_port),
            "--workers-port", str(workers_port),
            "--data-dir", str(workdir / "data"),
            "--runtime", "true" if DATA_PLANE else "false",
            "--accounts-per-hour", "100000",
            "--challenges-per-minute", "100000",
            "--log-level", "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=clean_env(),
        cwd=workdir,
    )  # fmt: skip
    SERVERS[workers_port] = process.pid
    try:
        wait_for_port(api_port, process, "mayfly serve")
        yield f"http://127.0.0.1:{api_port}", workers_port
    finally:
        SERVERS.pop(workers_port, None)
        stop(process)
        log.close()


def get_worker(client: httpx.Client, workers_port: int, url: str) -> httpx.Response:
    host = urlsplit(url).netloc
    return client.get(f"http://127.0.0.1:{workers_port}/", headers={"host": host})


def poll(
    client: httpx.Client, workers_port: int, url: str, body: str | None, timeout: float = 30
) -> float:
    """Seconds until the Worker answers 200 (with `body`, if given)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        response = get_worker(client, workers_port, url)
        if response.status_code == 200 and (body is None or response.text.startswith(body)):
            return time.perf_counter() - started
        time.sleep(0.002)
    raise SystemExit(f"{url} did not serve {body!r} within {timeout} s")


# -- 1. temporary deploys ----------------------------------------------------------------------


def temporary_deploys(
    api_url: str, workers_port: int, workdir: Path, runs: int
) -> dict[str, list[float]]:
    project = workdir / "hello"
    shutil.copytree(EXAMPLE, project)
    phases: dict[str, list[float]] = {"cli": [], "pow": [], "provision": [], "upload→200": []}
    with httpx.Client(timeout=30) as client:
        for run in range(runs):
            home = workdir / f"home-{run}"
            started = time.perf_counter()
            done = subprocess.run(
                [str(MAYFLY), "deploy", "--temporary", "--json"],
                cwd=project,
                env=clean_env(
                    HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), MAYFLY_API_URL=api_url
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            cli = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"deploy failed:\n{done.stdout}\n{done.stderr}")
            result = json.loads(done.stdout)
            timings = result["timings_ms"]
            phases["cli"].append(cli)
            phases["pow"].append(timings["pow"] / 1000)
            phases["provision"].append(timings["provision"] / 1000)
            if DATA_PLANE:
                after = poll(client, workers_port, result["url"], None)
                phases["upload→200"].append(timings["upload"] / 1000 + after)
            print(f"  run {run + 1}: {cli:.2f} s, {timings}", file=sys.stderr)
    return phases


# -- 2. redeploy → serving ----------------------------------------------------------------------


def redeploys(api_url: str, workers_port: int, workdir: Path, runs: int) -> list[float]:
    from mayfly.sdk import MayflyClient, TemporaryAccountCache, UploadModule, WorkerUpload

    cache = TemporaryAccountCache(workdir / "home-0" / ".config" / "mayfly")
    account = cache.load(api_url)
    assert account is not None
    seconds: list[float] = []
    url: str | None = None
    with MayflyClient(api_url, account.api_token) as sdk, httpx.Client(timeout=30) as client:
        for run in range(runs + 1):
            marker = f"version {run} {time.time_ns()}"
            source = (
                f"export default {{ fetch() {{ return new Response({json.dumps(marker)}); }} }};\n"
            )
            upload = WorkerUpload(
                "index.js", (UploadModule("index.js", source.encode()),), "2025-01-01"
            )
            sdk.upload_script(account.id, "bench", upload)  # poll() starts timing as this returns
            if url is None:
                url = sdk.get_worker(account.id, "bench").url
                assert url is not None
                poll(client, workers_port, url, marker)  # creating the Worker is not a redeploy
                continue
            seconds.append(poll(client, workers_port, url, marker))
    return seconds


# -- 3. throughput ------------------------------------------------------------------------------

CAPNP = """using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .hello)],
  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "main")],
);

const hello :Workerd.Worker = (
  modules = [
    (name = "src/index.js", esModule = embed "hello/src/index.js"),
    (name = "src/lib/greet.js", esModule = embed "hello/src/lib/greet.js"),
  ],
  compatibilityDate = "2025-01-01",
  bindings = [(name = "GREETING", text = "Hello")],
);
"""


@contextmanager
def bare_workerd(workdir: Path) -> Iterator[int]:
    port = free_port()
    config = workdir / "bare.capnp"
    config.write_text(CAPNP.replace("{port}", str(port)))
    log = (workdir / "workerd.log").open("wb")
    process = subprocess.Popen(
        [str(WORKERD), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
    )
    SERVERS[port] = process.pid
    try:
        wait_for_port(port, process, "workerd")
        yield port
    finally:
        SERVERS.pop(port, None)
        stop(process)
        log.close()


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these (live) processes, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def measured_load(
    port: int, host: str, seconds: float, connections: int
) -> tuple[float, dict[str, float]]:
    """Requests/s, and µs of CPU per request of the server on `port`: for Mayfly its workerd
    shards and the `mayfly serve` process apart, for a bare workerd the process itself."""
    root = SERVERS[port]
    groups = {"workerd": [root]}
    tree = _tree(root)
    if tree:
        groups = {"workerd": tree, "serve": [root]}
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    rate, requests = load(port, host, seconds, connections)
    return rate, {
        name: (cpu_seconds(pids) - before[name]) / max(requests, 1) * 1e6
        for name, pids in groups.items()
    }


def _tree(root: int) -> list[int]:
    """Every descendant of `root`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def load(port: int, host: str, seconds: float, connections: int) -> tuple[float, int]:
    """Requests/s and requests answered, with keep-alive connections: wrk if installed, else a
    Python client."""
    wrk = shutil.which("wrk")
    if wrk:
        done = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-H", f"Host: {host}",
             f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
        count = re.search(r"(\d+) requests in", done.stdout)
        if not match or not count or "Non-2xx" in done.stdout:
            raise SystemExit(f"wrk:\n{done.stdout}")
        return float(match.group(1)), int(count.group(1))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        rate: float = pool.apply(python_load, (port, host, seconds, connections))
        return rate, round(rate * seconds)


def python_load(port: int, host: str, seconds: float, connections: int) -> float:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_python_load(port, host, seconds, connections))


async def _python_load(port: int, host: str, seconds: float, connections: int) -> float:
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def worker(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head.decode(errors="replace"))
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                else:  # chunked
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                counts[index] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - started)


Rates = tuple[float, dict[str, float], float, dict[str, float]]


def throughput(
    workers_port: int, url: str, workdir: Path, seconds: float, connections: int
) -> Rates:
    """(Mayfly's req/s, its CPU µs per request, the bare workerd's, its CPU µs per request)."""
    host = urlsplit(url).netloc
    load(workers_port, host, 1.0, connections)  # warm up
    mayfly, mayfly_cpu = measured_load(workers_port, host, seconds, connections)
    shutil.copytree(EXAMPLE, workdir / "hello", dirs_exist_ok=True)
    with bare_workerd(workdir) as port:
        load(port, "localhost", 1.0, connections)
        bare, bare_cpu = measured_load(port, "localhost", seconds, connections)
    return mayfly, mayfly_cpu, bare, bare_cpu


# -- report -------------------------------------------------------------------------------------


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms" if values else "  skipped (no data plane)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mayfly-bench-") as tmp:
        workdir = Path(tmp)
        with mayfly_server(workdir) as (api_url, workers_port):
            print(f"1. mayfly deploy --temporary × {args.runs} (k=1000, g=2000)", file=sys.stderr)
            phases = temporary_deploys(api_url, workers_port, workdir, args.runs)
            redeploy: list[float] = []
            rates: Rates | None = None
            if DATA_PLANE:
                print(f"2. redeploy → new version serving × {args.runs}", file=sys.stderr)
                redeploy = redeploys(api_url, workers_port, workdir, args.runs)
                print(
                    f"3. requests/s, {args.connections} connections, {args.seconds} s each",
                    file=sys.stderr,
                )
                hello_url = _hello_url(api_url, workdir)
                rates = throughput(workers_port, hello_url, workdir, args.seconds, args.connections)
    print(
        f"\nMedians over {args.runs} runs (load generator: {'wrk' if shutil.which('wrk') else 'Python keep-alive client'})"
    )
    print(f"  deploy --temporary, whole CLI run       {median_ms(phases['cli'])}")
    print(f"    proof of work (k=1000, g=2000)        {median_ms(phases['pow'])}")
    print(f"    provisioning (challenge + account)    {median_ms(phases['provision'])}")
    print(f"    upload → first 200                    {median_ms(phases['upload→200'])}")
    print(f"  redeploy answered → new version serves  {median_ms(redeploy)}")
    if rates:
        mayfly, mayfly_cpu, bare, bare_cpu = rates
        shards, serve = mayfly_cpu["workerd"], mayfly_cpu.get("serve", 0.0)
        print(f"  hello world through Mayfly              {mayfly:8.0f} req/s")
        print(f"  hello world, bare single workerd        {bare:8.0f} req/s")
        print(f"  Mayfly ÷ bare workerd                   {mayfly / bare:8.2f}")
        print(
            f"  CPU per request, Mayfly's shards        {shards:8.0f} µs (+ {serve:.0f} µs serve)"
        )
        print(f"  CPU per request, bare workerd           {bare_cpu['workerd']:8.0f} µs")
        print(
            f"  bare ÷ Mayfly, CPU per request          {bare_cpu['workerd'] / (shards + serve):8.2f}"
        )
        print(f"  load average                            {os.getloadavg()[0]:8.2f}")
    else:
        print("  requests/s                                skipped (no data plane)")


def _hello_url(api_url: str, workdir: Path) -> str:
    from mayfly.sdk import MayflyClient, TemporaryAccountCache

    account = TemporaryAccountCache(workdir / "home-0" / ".config" / "mayfly").load(api_url)
    assert account is not None
    with MayflyClient(api_url, account.api_token) as sdk:
        url = sdk.get_worker(account.id, "hello").url
    assert url is not None
    return url


if __name__ == "__main__":
    main()
