"""Stopping the data plane lets in-flight requests finish within the grace period, then kills.

The timings (stop against the grace, both ways) are measured in bench/drain.py."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from tests.fakes.control_plane import FakeControlPlane, esm
from tests.runtime.harness import LiveDataPlane, platform_settings, require_workerd
from tests.runtime.test_supervisor import gone

pytestmark = pytest.mark.runtime

SECRET = "drain-secret"
SLOW = (
    "export default { async fetch() { await scheduler.wait(1500); return new Response('done'); } };"
)
SPIN = "export default { fetch() { while (true) {} } };"


def start(tmp_path: Path, source: str, grace: float) -> tuple[LiveDataPlane, FakeControlPlane]:
    require_workerd()
    cp = FakeControlPlane(SECRET)
    cp.add_version("v", [esm(source)])
    cp.serve("w.acct.localhost", "v")
    settings = platform_settings(tmp_path, shards=1, cpu_limit_ms=30_000)
    return LiveDataPlane(settings, cp.app(), SECRET, drain_grace=grace), cp


def test_stop_waits_for_a_request_in_flight(tmp_path: Path) -> None:
    """The request in flight finishes (200, not cut), and stop returns once it has, not after the
    grace: a grace longer than the loop's 60 s timeout would fail the run. How long stop takes
    against the grace is measured in bench/drain.py."""
    live, cp = start(tmp_path, SLOW, grace=600.0)
    shard = live.shards()[0]
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(live.status, "w.acct.localhost", 30)
            live.wait_for(lambda: cp.version_fetches["v"] == 1 and bool(shard.in_flight))
            assert live.dp is not None
            live.loop.run(live.dp.stop(), timeout=60)
            assert pending.result() == 200
        assert shard.returncode == 0
    finally:
        live.close()


def test_stop_kills_what_does_not_drain_within_the_grace(tmp_path: Path) -> None:
    live, cp = start(tmp_path, SPIN, grace=1.0)
    shard = live.shards()[0]
    workerd = shard.workerd_pid
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(live.status, "w.acct.localhost", 30)
            live.wait_for(lambda: cp.version_fetches["v"] == 1 and bool(shard.in_flight))
            assert live.dp is not None
            live.loop.run(live.dp.stop(), timeout=60)
            assert pending.result() is None
        assert shard.returncode != 0
        assert gone(workerd)
    finally:
        live.close()
