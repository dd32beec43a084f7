"""Data plane under an endless loop: how long a wedged shard lives, and what other tenants see.

Starts a real control plane and data plane in-process (tests/runtime/harness.py), deploys a
well-behaved tenant and a tenant whose fetch handler never returns (`while (true) {}`), then:

  baseline   the well-behaved tenant alone, for --seconds;
  incidents  --rounds times: one request to the spinning tenant wedges its shard; the well-behaved
             tenant keeps being requested until the supervisor has killed that shard and its
             replacement is ready, plus one second.

The well-behaved tenant is requested by --clients threads, each opening a new connection per
request, with no retries. Printed: success rates and throughput in both phases (and their ratio),
the time from the spinning request to the kill (the probe's detection) and from the kill to the
replacement being ready, per round and as medians.

    .venv/bin/python bench/dataplane.py [--rounds 5] [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.harness import LivePlatform, platform_settings

SPIN = "export default { fetch() { while (true) {} } };"
HELLO = "export default { fetch() { return new Response('hello'); } };"


@dataclass
class Load:
    """Requests from several client threads until `stop` is set."""

    live: LivePlatform
    host: str
    clients: int
    stop: threading.Event = field(default_factory=threading.Event)
    results: list[tuple[float, float, bool]] = field(default_factory=list)  # start, seconds, ok

    def run(self) -> None:
        threads = [threading.Thread(target=self._client) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        self._threads = threads

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            ok = self.live.status(self.host, timeout=10) == 200
            self.results.append((started, time.monotonic() - started, ok))


@dataclass
class Phase:
    requests: int
    succeeded: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0

    @property
    def throughput(self) -> float:
        return self.succeeded / self.seconds

    def describe(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return (
            f"{self.succeeded:,}/{self.requests:,} succeeded ({self.rate:.2%}), "
            f"{self.throughput:,.0f} req/s, p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms"
        )


def phase(load: Load, start: float, end: float) -> Phase:
    chosen = [r for r in load.results if start <= r[0] < end]
    return Phase(
        requests=len(chosen),
        succeeded=sum(ok for _, _, ok in chosen),
        seconds=end - start,
        latencies=[seconds for _, seconds, ok in chosen if ok],
    )


def incident(live: LivePlatform, load: Load, spin_host: str) -> tuple[float, float, Phase]:
    """One wedging request; returns (detection s, restart s, what the good tenant saw)."""
    events_before = len(live.supervisor.events)
    sent = time.monotonic()
    spinner = threading.Thread(target=live.status, args=(spin_host, 60))
    spinner.start()
    deadline = sent + 60
    while time.monotonic() < deadline:
        events = live.supervisor.events[events_before:]
        killed = next((e for e in events if e.kind == "unresponsive"), None)
        ready = killed and next(
            (e for e in events if e.kind == "started" and e.slot == killed.slot), None
        )
        if killed and ready:
            break
        time.sleep(0.01)
    else:
        raise SystemExit("the wedged shard was not replaced within 60 s")
    time.sleep(1.0)
    end = time.monotonic()
    spinner.join(60)
    return killed.at - sent, ready.at - killed.at, phase(load, sent, end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  (log) %(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        live = LivePlatform(platform_settings(Path(tmp)))
        try:
            s = live.settings
            print(
                f"Mayfly data plane, endless-loop incidents: {s.shards} shards, CPU limit "
                f"{s.cpu_limit_ms} ms, {args.clients} clients (new connection per request, "
                "no retries)"
            )
            good, bad = live.provision(), live.provision()
            live.deploy(good, "hello", HELLO)
            live.deploy(bad, "spin", SPIN)
            good_host, spin_host = live.host(good, "hello"), live.host(bad, "spin")
            for _ in range(20):
                live.status(good_host)

            load = Load(live, good_host, args.clients)
            started = time.monotonic()
            load.run()
            time.sleep(args.seconds)
            baseline = phase(load, started, time.monotonic())
            print(f"baseline   ({args.seconds:.0f} s)  {baseline.describe()}")

            detections, restarts, phases = [], [], []
            for n in range(1, args.rounds + 1):
                detection, restart, seen = incident(live, load, spin_host)
                detections.append(detection)
                restarts.append(restart)
                phases.append(seen)
                print(
                    f"incident {n}: killed {detection:.2f} s after the spinning request, "
                    f"replacement ready {restart * 1000:.0f} ms later; "
                    f"well-behaved: {seen.describe()}"
                )
            load.join()
        finally:
            live.close()

    total = Phase(
        requests=sum(p.requests for p in phases),
        succeeded=sum(p.succeeded for p in phases),
        seconds=sum(p.seconds for p in phases),
        latencies=[x for p in phases for x in p.latencies],
    )
    print()
    print(
        f"time to kill a wedged shard    median {statistics.median(detections):.2f} s "
        f"(min {min(detections):.2f}, max {max(detections):.2f})"
    )
    print(
        f"time to ready its replacement  median {statistics.median(restarts) * 1000:.0f} ms "
        f"(min {min(restarts) * 1000:.0f}, max {max(restarts) * 1000:.0f})"
    )
    print(
        f"spinning request → serving again on every shard  median "
        f"{statistics.median(d + r for d, r in zip(detections, restarts, strict=True)):.2f} s"
    )
    print(f"well-behaved tenant during incidents  {total.describe()}")
    print(
        f"  vs baseline: success rate {total.rate:.2%} vs {baseline.rate:.2%}, "
        f"throughput {total.throughput / baseline.throughput:.2f}x, "
        f"failed requests {total.requests - total.succeeded} in {len(phases)} incidents"
    )


if __name__ == "__main__":
    main()
