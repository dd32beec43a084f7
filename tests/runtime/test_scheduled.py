"""Cron triggers end to end: the scheduler claims a due run and the data plane runs the Worker's
scheduled() handler in a real workerd shard, which writes to KV; a Worker that is not served
(quarantined, deleted) does not run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from mayfly.services.workers.scheduler import Scheduler
from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd
from tests.runtime.test_tail import Tail

pytestmark = pytest.mark.runtime

WORKER = """
export default {
  async fetch(request, env) {
    return new Response("hello");
  },
  async scheduled(controller, env, ctx) {
    console.log("scheduled ran", controller.cron);
    const runs = JSON.parse((await env.KV.get("runs")) ?? "[]");
    runs.push({ cron: controller.cron, scheduledTime: controller.scheduledTime });
    await env.KV.put("runs", JSON.stringify(runs));
  },
};
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(
        platform_settings(tmp_path_factory.mktemp("cron"), shards=1, quarantine_cooldown=3600)
    )
    yield live
    live.close()


def deploy_with_cron(
    live: LivePlatform, script: str, source: str = WORKER
) -> tuple[dict[str, Any], str, str]:
    account = live.provision()
    headers = auth(account["apiToken"])
    created = live.api.post(
        f"accounts/{account['id']}/storage/kv/namespaces", headers=headers, json={"title": "t"}
    )
    ns: str = created.json()["result"]["id"]
    version = live.deploy(
        account,
        script,
        source,
        bindings=[{"type": "kv_namespace", "name": "KV", "namespace_id": ns}],
    )
    put = live.api.put(
        f"accounts/{account['id']}/workers/scripts/{script}/schedules",
        headers=headers,
        json=[{"cron": "* * * * *"}],
    )
    assert put.status_code == 200, put.text
    return account, ns, version


def runs(live: LivePlatform, account: dict[str, Any], ns: str) -> list[dict[str, Any]]:
    answer = live.api.get(
        f"accounts/{account['id']}/storage/kv/namespaces/{ns}/values/runs",
        headers=auth(account["apiToken"]),
    )
    if answer.status_code == 404:
        return []
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = json.loads(answer.content)
    return found


def tick(live: LivePlatform) -> list[str]:
    """One scheduler pass; the outcomes of the runs it started."""
    assert live.dp is not None
    scheduler = Scheduler(live.platform.services.schedules, live.dp)

    async def once() -> list[str]:
        return list(await asyncio.gather(*await scheduler.run_once()))

    return live.loop.run(once(), timeout=120)


def test_a_due_cron_runs_the_scheduled_handler_once(live: LivePlatform) -> None:
    account, ns, _ = deploy_with_cron(live, "ticker")
    assert tick(live) == []  # not due yet
    live.clock.offset += timedelta(seconds=61)
    assert tick(live) == ["ok"]
    found = runs(live, account, ns)
    assert len(found) == 1
    assert found[0]["cron"] == "* * * * *"
    assert found[0]["scheduledTime"] % 60_000 == 0
    assert tick(live) == []  # claimed: the next run is a minute later
    live.clock.offset += timedelta(seconds=60)
    assert tick(live) == ["ok"]
    assert len(runs(live, account, ns)) == 2


def test_a_quarantined_or_deleted_worker_does_not_run(live: LivePlatform) -> None:
    account, ns, version = deploy_with_cron(live, "held")
    live.platform.services.quarantine.record_incident(
        kind="unresponsive",
        shard="shard 0 (pid 1)",
        suspects=[version],
        certain=True,
        detail="test",
    )
    live.invalidate([live.host(account, "held")])
    live.clock.offset += timedelta(seconds=61)
    assert "skipped" in tick(live)
    assert runs(live, account, ns) == []
    # Deleted: its schedules go with it.
    deleted = live.api.delete(
        f"accounts/{account['id']}/workers/scripts/held", headers=auth(account["apiToken"])
    )
    assert deleted.status_code == 200
    live.clock.offset += timedelta(seconds=61)
    assert "skipped" not in tick(live)


def test_a_run_reaches_the_tail_as_a_scheduled_event(live: LivePlatform) -> None:
    account, ns, _ = deploy_with_cron(live, "tailed")
    headers = auth(account["apiToken"])
    created = live.api.post(
        f"accounts/{account['id']}/workers/scripts/tailed/tails", headers=headers, json={}
    )
    assert created.status_code == 200, created.text
    worker = SimpleNamespace(live=live, account=account, headers=headers, script="tailed")
    with Tail(worker, created.json()["result"]) as tail:  # type: ignore[arg-type]
        live.clock.offset += timedelta(seconds=61)
        assert "ok" in tick(live)
        event = tail.receive(timeout=30)
        assert event["event"]["cron"] == "* * * * *"
        assert event["event"]["scheduledTime"] % 60_000 == 0
        assert event["outcome"] == "ok"
        assert event["logs"][0]["message"] == ["scheduled ran", "* * * * *"]
    assert len(runs(live, account, ns)) == 1


SPINNER = "export default { fetch() { return new Response('x'); }, scheduled() { for (;;) {} } };"


def test_a_runaway_scheduled_handler_is_caught_and_attributed_like_a_request(
    live: LivePlatform,
) -> None:
    """Last in this module: it takes the shard down (the supervisor replaces it)."""
    _, _, version = deploy_with_cron(live, "spinner", SPINNER)
    live.clock.offset += timedelta(seconds=61)
    tick(live)
    live.wait_for(lambda: any(version in i.suspects for i in live.supervisor.incidents), timeout=60)
    # Other Workers' crons ran on the shard at the same minute: suspects with it, not certain.
    [incident] = [i for i in live.supervisor.incidents if version in i.suspects]
    assert incident.kind == "unresponsive"
    live.wait_for(lambda: len(live.shards()) == 1, timeout=60)  # replaced
