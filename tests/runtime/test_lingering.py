"""Tenant code that runs after its response (issue 9, item 2): work handed to ctx.waitUntil ends at
most `wait_until_limit` seconds after the response (Cloudflare's 30 s; 5 s here), and until it
ended the version counts as running on its shard (its request's end mark waits), as it does while
its WebSocket is open or its streamed body is being read."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from mayfly.runtime.attribution import attribute
from mayfly.runtime.shard import RequestStart
from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

CAP = 5.0
TENANT = """
import { WorkerEntrypoint, waitUntil } from "cloudflare:workers";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (pathname === "/loop") {
      // Writes KV every 300 ms, for ever if nothing stops it.
      ctx.waitUntil((async () => {
        for (let i = 0; ; i++) {
          await sleep(300);
          await env.KV.put("tick", String(i));
        }
      })());
      return new Response("started");
    }
    if (pathname === "/module-loop") {
      // The same loop through the waitUntil imported from cloudflare:workers.
      waitUntil((async () => {
        for (let i = 0; ; i++) {
          await sleep(300);
          await env.KV.put("module-tick", String(i));
        }
      })());
      return new Response("started");
    }
    if (pathname === "/short") {
      ctx.waitUntil(sleep(1500));
      return new Response("short");
    }
    if (pathname === "/throw") {
      ctx.waitUntil(sleep(1500));
      throw new Error("after leaving work");
    }
    if (pathname === "/stream") {
      let sent = 0;
      return new Response(new ReadableStream({
        async pull(controller) {
          await sleep(300);
          if (sent++ < 3) controller.enqueue(new TextEncoder().encode("x"));
          else controller.close();
        },
      }));
    }
    if (pathname === "/ws") {
      const [client, server] = Object.values(new WebSocketPair());
      server.accept();
      server.addEventListener("message", (event) => server.send(`echo ${event.data}`));
      return new Response(null, { status: 101, webSocket: client });
    }
    return new Response("plain");
  },
};
"""
CLASS_TENANT = """
import { WorkerEntrypoint } from "cloudflare:workers";
export default class extends WorkerEntrypoint {
  async fetch(request) {
    this.ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 1500)));
    return new Response(`class ${typeof this.ctx.props}`);
  }
};
"""
SERVICE_WORKER = """
addEventListener("fetch", (event) => {
  event.waitUntil(new Promise((resolve) => setTimeout(resolve, 1500)));
  event.respondWith(new Response("service worker"));
});
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    settings = platform_settings(
        tmp_path_factory.mktemp("lingering"), shards=1, wait_until_limit=CAP
    )
    live = LivePlatform(settings)
    yield live
    live.close()


@pytest.fixture(scope="module")
def tenant(live: LivePlatform) -> dict[str, Any]:
    account = live.provision()
    response = live.api.post(
        f"accounts/{account['id']}/storage/kv/namespaces",
        headers=auth(account["apiToken"]),
        json={"title": "ticks"},
    )
    assert response.status_code == 200, response.text
    ns = response.json()["result"]["id"]
    # An R2 binding: its client module also imports cloudflare:workers (the prelude must still
    # capture the imported waitUntil first).
    response = live.api.post(
        f"accounts/{account['id']}/r2/buckets",
        headers=auth(account["apiToken"]),
        json={"name": "lingering"},
    )
    assert response.status_code == 200, response.text
    version = live.deploy(
        account,
        "lingering",
        TENANT,
        bindings=[
            {"type": "kv_namespace", "name": "KV", "namespace_id": ns},
            {"type": "r2_bucket", "name": "BUCKET", "bucket_name": "lingering"},
        ],
    )
    return {"account": account, "ns": ns, "version": version}


def running(live: LivePlatform) -> list[str]:
    return [r.version_id for s in live.shards() for r in s.in_flight.values()]


def kv_tick(live: LivePlatform, tenant: dict[str, Any], key: str = "tick") -> str | None:
    account = tenant["account"]
    response = live.api.get(
        f"accounts/{account['id']}/storage/kv/namespaces/{tenant['ns']}/values/{key}",
        headers=auth(account["apiToken"]),
    )
    return response.text if response.status_code == 200 else None


def test_a_response_without_work_left_ends_at_once(
    live: LivePlatform, tenant: dict[str, Any]
) -> None:
    response = live.get(live.host(tenant["account"], "lingering"), "/plain")
    assert response.text == "plain"
    assert "x-mayfly-linger" not in response.headers
    live.wait_for(lambda: running(live) == [], timeout=1.0)


def test_the_version_runs_until_its_wait_until_work_ended(
    live: LivePlatform, tenant: dict[str, Any]
) -> None:
    host = live.host(tenant["account"], "lingering")
    for path, status in (("/short", 200), ("/throw", 500)):
        started = time.monotonic()
        response = live.get(host, path)
        assert response.status_code == status
        assert "x-mayfly-linger" not in response.headers
        if status == 500:
            assert response.headers["x-mayfly-error"] == "exception"
        # Its work is still running (the marks are read in batches: wait for the start).
        live.wait_for(lambda: running(live) == [tenant["version"]], timeout=1.4)
        live.wait_for(lambda: running(live) == [], timeout=5.0)
        # Ended when the work did (1.5 s), long before the cap.
        assert time.monotonic() - started < CAP


def test_wait_until_work_is_stopped_at_the_cap(live: LivePlatform, tenant: dict[str, Any]) -> None:
    """The KV loop a red-team Worker left running for ever stops at the cap, and so does the
    version's running state."""
    host = live.host(tenant["account"], "lingering")
    assert live.get(host, "/loop").text == "started"
    answered = time.monotonic()
    live.wait_for(lambda: kv_tick(live, tenant) is not None, timeout=5.0)
    live.wait_for(lambda: running(live) == [], timeout=CAP + 6.0)
    last = kv_tick(live, tenant)
    time.sleep(1.0)  # several of its 300 ms periods: it would have written again
    assert kv_tick(live, tenant) == last
    assert last is not None and int(last) <= CAP / 0.3 + 1
    assert time.monotonic() - answered >= CAP - 0.5


def test_imported_wait_until_work_is_tracked_and_stopped_at_the_cap(
    live: LivePlatform, tenant: dict[str, Any]
) -> None:
    """The KV loop again, through `import { waitUntil } from "cloudflare:workers"`: the version
    runs while it does, and it stops at the cap."""
    host = live.host(tenant["account"], "lingering")
    assert live.get(host, "/module-loop").text == "started"
    answered = time.monotonic()
    live.wait_for(lambda: kv_tick(live, tenant, "module-tick") is not None, timeout=5.0)
    assert running(live) == [tenant["version"]]
    live.wait_for(lambda: running(live) == [], timeout=CAP + 6.0)
    last = kv_tick(live, tenant, "module-tick")
    time.sleep(1.0)  # several of its 300 ms periods: it would have written again
    assert kv_tick(live, tenant, "module-tick") == last
    assert last is not None and int(last) <= CAP / 0.3 + 1
    assert time.monotonic() - answered >= CAP - 0.5


def test_a_class_entrypoint_and_a_service_worker_are_tracked_too(live: LivePlatform) -> None:
    account = live.provision()
    versions = {
        "klass": live.deploy(account, "klass", CLASS_TENANT),
        "sw": live.deploy(account, "sw", SERVICE_WORKER),
    }
    expected = {"klass": "class object", "sw": "service worker"}
    for script, version in versions.items():
        response = live.get(live.host(account, script))
        assert response.text == expected[script]
        live.wait_for(lambda v=version: running(live) == [v], timeout=1.4)
        live.wait_for(lambda: running(live) == [], timeout=5.0)


def test_a_streamed_body_runs_until_it_ended(live: LivePlatform, tenant: dict[str, Any]) -> None:
    host = live.host(tenant["account"], "lingering")
    seen: list[list[str]] = []
    url = f"http://127.0.0.1:{live.port}/stream"
    with httpx.stream("GET", url, headers={"host": host}, timeout=10) as response:
        for _ in response.iter_raw():
            seen.append(running(live))
    assert [tenant["version"]] in seen
    live.wait_for(lambda: running(live) == [], timeout=2.0)


def test_a_websocket_runs_while_it_is_open(live: LivePlatform, tenant: dict[str, Any]) -> None:
    host = live.host(tenant["account"], "lingering")
    sock = socket.create_connection(("127.0.0.1", live.port))
    with connect(f"ws://{host}/ws", sock=sock) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo hi"
        live.wait_for(lambda: running(live) == [tenant["version"]], timeout=5.0)
    live.wait_for(lambda: running(live) == [], timeout=5.0)


def test_a_lingering_version_makes_a_freeze_ambiguous() -> None:
    """The attribution rule: a version whose response left code running is still among the
    shard's running versions, so the in-flight neighbour is never the certain culprit; the one
    that started last heads the suspects."""
    victim = RequestStart("1", "victim", 1.0)
    lingering = RequestStart("2", "attacker", 1.3)  # answered, its waitUntil work still running
    incident = attribute(
        "unresponsive",
        "shard 0",
        running=[victim, lingering],
        recent=[],
        reported=[],
        corroborated=True,
        detail="",
    )
    assert not incident.certain
    assert incident.suspects == ("attacker", "victim")
    alone = attribute(
        "unresponsive",
        "shard 0",
        running=[lingering],
        recent=[],
        reported=[],
        corroborated=True,
        detail="",
    )
    assert alone.certain and alone.suspects == ("attacker",)
