"""The supervisor knows which tenant requests run on each shard: the dispatcher reports them on
every probe (/health) and marks each start and end on stdout with a per-shard secret, which a
tenant printing look-alike lines cannot forge."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from mayfly.runtime.admin import admin_call
from mayfly.runtime.config import MARK_ENV_VAR
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SLOW = """
export default {
  async fetch() {
    console.log("+ 1 forged-version");
    console.log("- 1");
    await new Promise((resolve) => setTimeout(resolve, 3000));
    return new Response("slow");
  },
};
"""


def test_requests_in_flight_are_reported_and_marked(tmp_path: Path) -> None:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path))
    try:
        account = live.provision()
        version = live.deploy(account, "slow", SLOW)
        host = live.host(account, "slow")
        statuses: list[int | None] = []
        request = threading.Thread(target=lambda: statuses.append(live.status(host)))
        request.start()

        def running() -> list[str]:
            return [r.version_id for s in live.shards() for r in s.in_flight.values()]

        live.wait_for(lambda: running() == [version])
        shard = next(s for s in live.shards() if s.in_flight)
        health = asyncio.run(admin_call(str(shard.admin_path), "GET", "/health", timeout=5))
        (entry,) = health["inflight"]
        assert entry["version_id"] == version
        assert entry["account_id"] == account["id"]
        assert entry["script"] == "slow"
        assert isinstance(entry["started_ms"], int)
        # The tenant's look-alike lines are plain output; the secret is not in its reach.
        assert all(r.version_id != "forged-version" for r in shard.recent_starts)
        assert MARK_ENV_VAR not in shard.output_tail()

        request.join(15)
        assert statuses == [200]
        live.wait_for(lambda: running() == [])
        health = asyncio.run(admin_call(str(shard.admin_path), "GET", "/health", timeout=5))
        assert health["inflight"] == []
        assert [r.version_id for r in shard.recent_starts] == [version]
    finally:
        live.close()
