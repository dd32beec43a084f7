"""How long stopping the data plane takes against its drain grace (not run in CI; the tests in
tests/runtime/test_drain.py check what happens, this measures when).

1. A request in flight that needs 1.5 s more, grace 10 s: stop should return when the request is
   done (about 1.5 s after the request started), not after the grace.
2. A Worker that never finishes, grace 1 s: stop should wait the grace, then kill (about 1 s).

Each figure is printed with its baseline (the request's own duration, the grace) and the ratio.

    .venv/bin/python bench/drain.py [--runs 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.control_plane import FakeControlPlane, esm
from tests.runtime.harness import LiveDataPlane, platform_settings

SECRET = "drain-secret"
SLOW_MS = 1500
SLOW = f"export default {{ async fetch() {{ await scheduler.wait({SLOW_MS}); return new Response('done'); }} }};"
SPIN = "export default { fetch() { while (true) {} } };"


def stop_seconds(source: str, grace: float) -> tuple[float, int | None]:
    """Seconds from the request's start mark to the end of DataPlane.stop(), and its status."""
    with tempfile.TemporaryDirectory() as tmp:
        cp = FakeControlPlane(SECRET)
        cp.add_version("v", [esm(source)])
        cp.serve("w.acct.localhost", "v")
        settings = platform_settings(Path(tmp), shards=1, cpu_limit_ms=30_000)
        live = LiveDataPlane(settings, cp.app(), SECRET, drain_grace=grace)
        try:
            shard = live.shards()[0]
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(live.status, "w.acct.localhost", 30)
                live.wait_for(lambda: bool(shard.in_flight))
                started = time.monotonic()
                assert live.dp is not None
                live.loop.run(live.dp.stop(), timeout=grace + 60)
                seconds = time.monotonic() - started
                return seconds, pending.result()
        finally:
            live.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    drained = [stop_seconds(SLOW, 10.0) for _ in range(args.runs)]
    killed = [stop_seconds(SPIN, 1.0) for _ in range(args.runs)]
    assert all(status == 200 for _, status in drained), drained
    assert all(status is None for _, status in killed), killed
    drain = statistics.median(s for s, _ in drained)
    kill = statistics.median(s for s, _ in killed)
    print(f"drain: stop took {drain:.2f} s for a {SLOW_MS / 1000:.1f} s request under a 10 s grace")
    print(
        f"  ratio to the request: {drain / (SLOW_MS / 1000):.2f} (≈ 1: it returned when the request was done, not after the grace)"
    )
    print(f"kill:  stop took {kill:.2f} s for a Worker that never finishes under a 1 s grace")
    print(f"  ratio to the grace: {kill:.2f} (≈ 1: it waited the grace, then killed)")


if __name__ == "__main__":
    main()
