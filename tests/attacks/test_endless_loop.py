"""A tenant's endless loop freezes its whole shard (workerd enforces no CPU limit): the supervisor
must kill and replace that shard while a well-behaved tenant keeps answering."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SPIN = "export default { fetch() { while (true) {} } };"
HELLO = "export default { fetch() { return new Response('still here'); } };"


def test_an_endless_loop_costs_one_shard_not_the_other_tenants(tmp_path: Path) -> None:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path))
    try:
        good, bad = live.provision(), live.provision()
        live.deploy(good, "hello", HELLO)
        live.deploy(bad, "spin", SPIN)
        good_host, bad_host = live.host(good, "hello"), live.host(bad, "spin")
        for _ in range(10):  # warm on every shard
            assert live.status(good_host) == 200
        before = {s.slot: s.pid for s in live.shards()}

        spin_status: list[int | None] = []
        spinner = threading.Thread(target=lambda: spin_status.append(live.status(bad_host, 30)))
        spinner.start()

        # Requests while the shard is wedged, killed and replaced, then more once the replacement
        # serves: 200 in all at least (the one request the wedged shard had taken fails).
        statuses: list[int | None] = []
        deadline = time.monotonic() + 60  # a hang guard only
        killed_at: int | None = None  # how many requests had been made when the kill was seen
        replaced_at: int | None = None  # and when the replacement served
        while replaced_at is None or len(statuses) < max(200, replaced_at + 20):
            assert time.monotonic() < deadline, "the wedged shard was never replaced"
            statuses.append(live.status(good_host))
            if killed_at is None and any(e.kind == "unresponsive" for e in live.supervisor.events):
                killed_at = len(statuses)
            if killed_at is not None and replaced_at is None and len(live.shards()) == 2:
                replaced_at = len(statuses)
        spinner.join(30)

        killed = [e for e in live.supervisor.events if e.kind == "unresponsive"]
        assert len(killed) == 1
        assert killed[0].pid == before[killed[0].slot]
        live.wait_for(lambda: len(live.shards()) == 2)
        assert {s.slot: s.pid for s in live.shards()}[killed[0].slot] != killed[0].pid
        assert spin_status == [None]  # its connection died with the shard

        assert replaced_at is not None
        assert set(statuses[replaced_at:]) == {200}
        succeeded = statuses.count(200)
        assert succeeded / len(statuses) >= 0.99, f"{succeeded}/{len(statuses)} succeeded"
        assert live.status(good_host) == 200
    finally:
        live.close()
