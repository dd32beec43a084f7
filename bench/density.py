"""Density: N live temporary accounts with a Worker each, swept cold then warm, on one machine.

    .venv/bin/python bench/density.py [--workers 10000] [--shards 2] [--shard-memory 3072]
                                      [--shard-isolates 1500] [--baseline 1000]

1. Baseline, in this run: a bare workerd whose only Worker loads `--baseline` never-seen Workers
   (the same source as the tenants') with the Worker Loader, one request each over one keep-alive
   connection: the cost of creating an isolate and serving its first request, nothing else.
2. A real control plane and data plane in this process (tests/runtime/harness.py), with a low
   proof of work and raised provisioning limits (bench only). `--workers` temporary accounts are
   provisioned through the public API, each deploys one Worker that answers its own name.
3. Cold sweep: every Worker once, in order, over one keep-alive connection (each is never loaded
   before); warm sweep: the same again. A request fails unless it is a 200 with the Worker's own
   body.
Printed: provisioning rate; cold and warm p50/p99 and failures; the route and code requests the
shards made of the control plane during the cold sweep; the data plane's peak RSS (every
workerd process, replacements and draining shards included, sampled every 0.2 s) against its
configured bound; isolate loads per Worker; recycles; cold p99 ÷ the bare workerd's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import http.client
import itertools
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.harness import LivePlatform, platform_settings

from mayfly.runtime.procfs import cpu_seconds
from mayfly.runtime.workerd import find_workerd
from mayfly.settings import Settings

MIB = 1024 * 1024
SOURCE = "export default { fetch() { return new Response(%s); } };"

BARE_DISPATCHER = """
const source = %s;
export default {
  fetch(request, env) {
    const name = new URL(request.url).pathname.slice(1);
    const worker = env.LOADER.get(name, () => ({
      compatibilityDate: "2025-01-01",
      mainModule: "index.js",
      modules: { "index.js": source.replace("%%s", JSON.stringify(name)) },
      globalOutbound: null,
    }));
    return worker.getEntrypoint().fetch(request);
  },
};
"""

BARE_CONFIG = """
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = (modules = [(name = "main.js", esModule = embed "main.js")],
    compatibilityDate = "2025-11-01", bindings = [(name = "LOADER", workerLoader = ())])) ],
  sockets = [ (name = "http", address = "127.0.0.1:%d", http = (), service = "main") ],
);
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def describe(ms: list[float]) -> str:
    if not ms:
        return "no successful request"
    return f"p50 {statistics.median(ms):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sweep(port: int, targets: list[tuple[str, str, str]]) -> tuple[list[float], list[str], int]:
    """(host, path, expected body) each once, in order, over one keep-alive connection; returns the
    latencies of the correct answers (ms), the failures, and the requests resent once because the
    server closed the reused connection as they were sent (a recycled shard closes its idle
    keep-alive connections; HTTP clients resend an idempotent request then, RFC 9112 §9.3.1)."""
    latencies: list[float] = []
    failures: list[str] = []
    resent = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    reused = False
    for host, path, expected in targets:
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                conn.request("GET", path, headers={"Host": host})
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if attempt == 1 and reused and isinstance(exc, http.client.RemoteDisconnected):
                    resent += 1
                    reused = False
                    continue
                failures.append(f"{host}: {exc!r}")
                body = None
                break
        if body is None:
            reused = False
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if response.status == 200 and body == expected:
            latencies.append(elapsed)
        else:
            failures.append(f"{host}: {response.status} {body[:80]!r}")
        reused = not response.will_close
        if response.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()
    return latencies, failures, resent


def bare_baseline(count: int) -> tuple[list[float], list[float], float]:
    """Cold and warm latencies (ms) of `count` Workers loaded by a bare workerd, and the CPU time
    (ms) the workerd spent per cold request."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        main = BARE_DISPATCHER % repr(SOURCE)
        Path(tmp, "main.js").write_text(main)
        Path(tmp, "bare.capnp").write_text(BARE_CONFIG % port)
        process = subprocess.Popen(
            [str(find_workerd()), "serve", "bare.capnp", "--experimental"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the bare workerd did not start")
                time.sleep(0.05)
            targets = [("bare", f"/b{i}", f"b{i}") for i in range(count)]
            cpu = cpu_seconds([process.pid])
            cold, cold_failed, _ = sweep(port, targets)
            cpu = cpu_seconds([process.pid]) - cpu
            warm, warm_failed, _ = sweep(port, targets)
            if cold_failed or warm_failed:
                print(f"  bare workerd failures: {(cold_failed + warm_failed)[:3]}")
            return cold, warm, cpu * 1000 / max(1, len(targets))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class PeakRss:
    """Samples the data plane's memory (every workerd process) until stopped."""

    def __init__(self, live: LivePlatform, every: float = 0.2):
        self.live = live
        self.every = every
        self.peak = 0
        self.loads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        assert self.live.dp is not None
        usage = self.live.loop.run(self.live.dp.usage())
        self.peak = max(self.peak, usage.rss_bytes)
        self.loads = usage.isolate_loads

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """CPU seconds used so far by the shards, and by this process except the calling thread (the
    sweeping client): the control plane, the supervisor, the RSS sampler."""

    shards: float
    control_plane: float

    @classmethod
    def now(cls, shards: list[Any]) -> CpuTimes:
        times = os.times()
        return cls(
            shards=sum(shard.cpu_seconds() for shard in shards),
            control_plane=times.user + times.system - time.thread_time(),
        )

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.shards - other.shards, self.control_plane - other.control_plane)


def provision_all(live: LivePlatform, count: int, threads: int) -> list[tuple[str, str, str]]:
    """`count` temporary accounts, one Worker each; returns (host, path, expected body)."""
    counter = itertools.count()

    def one(_: int) -> tuple[str, str, str]:
        index = next(counter)
        account = live.provision()
        name = f"w{index}"
        live.deploy(account, "hello", SOURCE % repr(name).replace("'", '"'))
        return live.host(account, "hello"), "/", name

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--shard-memory", type=int, default=3072, help="MiB per shard")
    parser.add_argument("--shard-isolates", type=int, default=1500)
    parser.add_argument("--baseline", type=int, default=1000, help="Workers the bare run loads")
    parser.add_argument("--threads", type=int, default=4, help="provisioning threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  (log) %(message)s")

    print(f"Density: {args.workers:,} temporary accounts, one Worker each ({os.cpu_count()} cores)")
    bare_cold, bare_warm, bare_cpu = bare_baseline(min(args.baseline, args.workers))
    print(
        f"  bare workerd, {len(bare_cold):,} Workers: cold {describe(bare_cold)}; "
        f"warm {describe(bare_warm)}; {bare_cpu:.2f} ms of CPU per cold request"
    )

    overrides: dict[str, Any] = {
        "shards": args.shards,
        "shard_memory": args.shard_memory,
        "shard_isolates": args.shard_isolates,
        "max_live_temporary": args.workers + 10,
        "accounts_per_hour": args.workers * 10,
        "challenges_per_minute": args.workers * 10,
        "signups_per_minute_total": args.workers * 10,
    }
    with tempfile.TemporaryDirectory() as tmp:
        known = {f.name for f in dataclasses.fields(Settings)}
        live = LivePlatform(
            platform_settings(Path(tmp), **{k: v for k, v in overrides.items() if k in known})
        )
        try:
            s = live.settings
            ceiling = s.shard_memory_ceiling or s.shard_memory * 3 // 2
            bound = (s.shards + 1) * ceiling
            started = time.monotonic()
            targets = provision_all(live, args.workers, args.threads)
            took = time.monotonic() - started
            print(
                f"  provisioned {len(targets):,} accounts + Workers in {took:.0f} s "
                f"({len(targets) / took:.0f}/s); {s.shards} shards, budget {s.shard_memory} MiB "
                f"and {s.shard_isolates} Workers each, ceiling {ceiling} MiB"
            )
            rss = PeakRss(live)
            asked_before = len(live.internal.paths)
            shards = live.shards()
            cpu = CpuTimes.now(shards)
            started = time.monotonic()
            cold, cold_failed, cold_resent = sweep(live.port, targets)
            cold_took = time.monotonic() - started
            cpu = CpuTimes.now(shards) - cpu
            asked = live.internal.paths[asked_before:]
            warm, warm_failed, warm_resent = sweep(live.port, targets)
            rss.stop()
            events = live.supervisor.events
            kinds = [e.kind for e in events]
            print(
                f"  cold sweep ({cold_took:.0f} s): {describe(cold)}, failed {len(cold_failed)}, "
                f"resent after a keep-alive close {cold_resent}"
            )
            print(
                "  control-plane requests during the cold sweep: "
                f"{sum(p == '/internal/v1/route' for p in asked)} route, "
                f"{sum(p.startswith('/internal/v1/versions/') for p in asked)} code; CPU per "
                f"cold request: shards {cpu.shards * 1000 / len(targets):.2f} ms, control plane "
                f"{cpu.control_plane * 1000 / len(targets):.2f} ms"
            )
            print(
                f"  warm sweep: {describe(warm)}, failed {len(warm_failed)}, "
                f"resent after a keep-alive close {warm_resent}"
            )
            for failure in (cold_failed + warm_failed)[:5]:
                print(f"    {failure}")
            print(
                f"  data-plane peak RSS {rss.peak / MIB:,.0f} MiB; bound {bound:,} MiB "
                f"((shards + 1 replacement) × ceiling), budget {s.shards * s.shard_memory:,} MiB"
            )
            print(
                f"  isolate loads per Worker {rss.loads / len(targets):.2f}; recycles "
                f"{kinds.count('recycle')}, memory kills {kinds.count('memory')}, other kills "
                f"{kinds.count('unresponsive') + kinds.count('exited')}"
            )
            base = percentile(bare_cold, 0.99)
            print(
                f"  cold p99 through Mayfly ÷ bare workerd: {percentile(cold, 0.99) / base:.2f} "
                f"(p50 {statistics.median(cold) / statistics.median(bare_cold):.2f})"
                if cold and bare_cold
                else "  no ratio"
            )
        finally:
            live.close()


if __name__ == "__main__":
    main()
