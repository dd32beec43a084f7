"""Requests that wait on another request's work (docs/dataplane.md, "Promises shared between
requests"). Outbound's waiters once got their slot by a promise the releasing invocation resolved
and, about once in a few hundred concurrent floods, a fetch() the resumed code started never
settled (f319929). The other places where one request waits on another's work are hammered here,
with a short request deadline so that a hang shows as a 504 within seconds:

- the dispatcher's coalesced lookups (`shared()`): concurrent requests for a host whose route the
  shard does not have wait for one route lookup, the first requests of a version whose code was not
  pushed for one code lookup, and then each loads the Worker and calls it with its own request body;
- `Linger.done(token)`, called from the tenant's isolate (an invocation of its own), resolves the
  promise that holds the end mark of the request that left waitUntil work.

No hang was found (figures in the docs); this is the short version of that stress. Longer:
MAYFLY_STRESS_SECONDS=100 MAYFLY_STRESS_AT_ONCE=16."""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

DEADLINE = 5.0
# The waitUntil limit: a lost Linger.done would hold its request's end mark CAP + 5 s, past the test.
CAP = 60.0
# Requests at once per round, and how long each kind of round is repeated.
AT_ONCE = int(os.environ.get("MAYFLY_STRESS_AT_ONCE", "12"))
SECONDS = float(os.environ.get("MAYFLY_STRESS_SECONDS", "3"))
BODY = b"x" * 1000
# After the shared wait, the dispatcher loads the isolate (or finds it) and calls it; the Worker
# reads its body (an I/O object of its own request: resumed in another request's context, reading
# it would fail), makes a subrequest through the dispatcher (a KV read) and leaves waitUntil work.
TENANT = """
export default {
  async fetch(request, env, ctx) {
    const value = await env.KV.get("k");
    const body = await request.text();
    ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 20)));
    return new Response(`${value} ${body.length}`);
  },
};
"""
ANSWER = f"null {len(BODY)}"
# Over route_push.PUSH_CODE_BYTES: its route is pushed, its code asked for by its first requests.
PADDING = "// " + "x" * (300 * 1024) + "\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    settings = platform_settings(
        tmp_path_factory.mktemp("cross"), request_timeout=DEADLINE, wait_until_limit=CAP
    )
    live = LivePlatform(settings)
    yield live
    live.close()


def kv_binding(live: LivePlatform, account: dict[str, Any]) -> list[dict[str, Any]]:
    response = live.api.post(
        f"accounts/{account['id']}/storage/kv/namespaces",
        headers=auth(account["apiToken"]),
        json={"title": "cross"},
    )
    assert response.status_code == 200, response.text
    ns = response.json()["result"]["id"]
    return [{"type": "kv_namespace", "name": "KV", "namespace_id": ns}]


def outcome(live: LivePlatform, host: str) -> str:
    """How a POST of BODY on a new connection ended: "ok", or what came instead."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=DEADLINE + 10)
    try:
        conn.request("POST", "/", body=BODY, headers={"Host": host})
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()
    return "ok" if text == ANSWER else f"{response.status} {text[:80]}"


def rounds(live: LivePlatform, prepare: Callable[[int], str]) -> tuple[Counter[str], int]:
    """For SECONDS: `prepare(n)` names a host whose next requests share a lookup, then AT_ONCE
    threads request it at the same moment. How the requests ended, and how many rounds ran."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    host = ""
    barrier = threading.Barrier(AT_ONCE + 1)
    stop = threading.Event()

    def request() -> None:
        while True:
            barrier.wait()
            if stop.is_set():
                return
            ended = outcome(live, host)
            with lock:
                outcomes[ended] += 1
            barrier.wait()

    threads = [threading.Thread(target=request) for _ in range(AT_ONCE)]
    for thread in threads:
        thread.start()
    end = time.monotonic() + SECONDS
    made = 0
    try:
        while time.monotonic() < end:
            host = prepare(made)
            barrier.wait()  # go
            barrier.wait()  # all answered
            made += 1
    finally:
        stop.set()
        barrier.wait()
        for thread in threads:
            thread.join()
    return outcomes, made


def lookups(live: LivePlatform, prefix: str) -> int:
    return sum(path.startswith(prefix) for path in live.internal.paths)


def test_requests_waiting_on_another_requests_lookup_all_answer(live: LivePlatform) -> None:
    account = live.provision()
    bindings = kv_binding(live, account)
    live.deploy(account, "routed", TENANT, bindings=bindings)
    host = live.host(account, "routed")
    assert outcome(live, host) == "ok"

    def forget(_: int) -> str:
        live.invalidate([host])  # no route pushed: the next requests ask, once per shard
        return host

    before = lookups(live, "/internal/v1/route")
    outcomes, made = rounds(live, forget)
    asked = lookups(live, "/internal/v1/route") - before
    assert outcomes == {"ok": made * AT_ONCE}, outcomes
    assert asked < made * AT_ONCE // 2, (asked, made)  # they did wait on each other's

    accounts = [(account, bindings)]

    def fresh(n: int) -> str:
        if n % 40 == 39:  # a temporary account holds 50 Workers
            other = live.provision()
            accounts.append((other, kv_binding(live, other)))
        owner, kv = accounts[-1]
        live.deploy(owner, f"big{n}", PADDING + TENANT, bindings=kv)
        return live.host(owner, f"big{n}")

    before = lookups(live, "/internal/v1/versions/")
    outcomes, made = rounds(live, fresh)
    asked = lookups(live, "/internal/v1/versions/") - before
    assert outcomes == {"ok": made * AT_ONCE}, outcomes
    assert asked < made * AT_ONCE // 2, (asked, made)

    # Every request's wait ended 20 ms after its response, when the tenant called done(token): a
    # resolution that never ran would hold that request's end mark for CAP + 5 s.
    live.wait_for(lambda: not any(s.in_flight for s in live.shards()), timeout=10)
