"""Supervision the API cannot starve: the supervisor has its own loop and thread, so a blocked API
loop delays no probe and kills no healthy shard, and a tenant's endless loop is still ended
meanwhile. (A GIL held for seconds is covered by test_hostile_tenants' uploads scenario and the
stall test in tests/runtime/test_supervisor.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

HELLO = "export default { fetch() { return new Response('hello'); } };"
SPIN = "export default { fetch() { while (true) {} } };"
KILLS = {"unresponsive", "memory", "no-ack", "exited"}


async def block_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a synchronous call in a request handler does to its loop


def test_a_blocked_api_loop_kills_no_shard(tmp_path: Path) -> None:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path))
    try:
        account = live.provision()
        live.deploy(account, "hello", HELLO)
        host = live.host(account, "hello")
        assert live.status(host) == 200
        probe_timeout = live.supervisor.limits.probe_timeout
        live.loop.run(block_the_loop(3 * probe_timeout))
        assert [e for e in live.supervisor.events if e.kind in KILLS] == []
        assert live.status(host) == 200
    finally:
        live.close()


def test_an_endless_loop_is_ended_while_the_api_loop_is_blocked(tmp_path: Path) -> None:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path))
    try:
        account = live.provision()
        version = live.deploy(account, "spin", SPIN)
        host = live.host(account, "spin")
        live.status(host, timeout=0.5)  # starts spinning on one shard
        started = time.monotonic()
        live.loop.run(block_the_loop(4 * live.supervisor.limits.probe_timeout))
        killed = [e for e in live.supervisor.events if e.kind == "unresponsive"]
        assert killed and killed[0].at < started + 4 * live.supervisor.limits.probe_timeout
        assert live.supervisor.incidents[0].suspects == (version,)
        assert live.supervisor.incidents[0].certain
    finally:
        live.close()
