"""A tenant floods the internet with subrequests (issue 9): thousands of concurrent fetch()es from
one request held a file descriptor each in the shard every other tenant shares (a shard may open
as many as the host lets it). Every tenant's globalOutbound is the dispatcher's Outbound
entrypoint (runtime/outbound.js): per version and shard, `outbound_connections` are open at once,
further subrequests wait, and beyond `subrequests` open or waiting one fails with Cloudflare's
"Too many subrequests.". Here the bounds are small (2 and 20) and the targets are refused by the
network (a private address), so what the test sees is the count alone; what a flood to a slow
public server did to a neighbour, with and without the bounds, is in docs/dataplane.md."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SUBREQUESTS = 20
CONNECTIONS = 2
TOO_MANY = "Error: Too many subrequests."

# Fires `n` fetch()es at once (to an address the network refuses) and counts how each ended.
FLOODER = """
export default {
  async fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n"));
    const ended = await Promise.allSettled(
      Array.from({ length: n }, () => fetch("http://10.255.255.1/")),
    );
    const errors = {};
    for (const result of ended) {
      const key = result.status === "rejected" ? String(result.reason) : `HTTP ${result.value.status}`;
      errors[key] = (errors[key] ?? 0) + 1;
    }
    return Response.json(errors);
  },
};
"""
# Per flooding request. Each subrequest costs the shard ~0.2 ms of CPU even when it is refused (a
# call into the dispatcher): thousands at once from one request hold the event loop as long as a
# busy loop would, and the CPU limit takes that for a freeze (test_hostile_tenants).
FLOOD = 400
DEADLINE = 5.0
GOOD = 'export default { fetch() { return new Response("good"); } };'


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    settings = platform_settings(
        tmp_path_factory.mktemp("subrequests"),
        subrequests=SUBREQUESTS,
        outbound_connections=CONNECTIONS,
        # A subrequest that never ends shows as a 504 at the deadline: short here, so a test waits
        # for it seconds, not half a minute.
        request_timeout=DEADLINE,
    )
    live = LivePlatform(settings)
    yield live
    live.close()


def flood(live: LivePlatform, host: str, n: int) -> dict[str, int]:
    response = live.get(host, f"/?n={n}")
    assert response.status_code == 200, response.text
    outcome: dict[str, int] = json.loads(response.text)
    return outcome


def test_subrequests_beyond_the_bound_fail_with_cloudflares_error(live: LivePlatform) -> None:
    account = live.provision()
    live.deploy(account, "flooder", FLOODER)
    host = live.host(account, "flooder")
    outcome = flood(live, host, 200)
    assert sum(outcome.values()) == 200
    # The first SUBREQUESTS took a connection or waited for one; the rest were refused at once.
    assert outcome.get(TOO_MANY, 0) >= 200 - SUBREQUESTS - CONNECTIONS, outcome
    # The ones let through reached the network, which refused the address.
    assert all("subrequests" not in error for error in outcome if error != TOO_MANY), outcome
    # Every connection was given back: a later request of the same version may make as many.
    assert flood(live, host, SUBREQUESTS // 2).get(TOO_MANY, 0) == 0


def test_a_subrequest_flood_leaves_a_neighbour_answering(live: LivePlatform) -> None:
    flooder, other = live.provision(), live.provision()
    live.deploy(flooder, "flood", FLOODER)
    live.deploy(other, "good", GOOD)
    bad, good = live.host(flooder, "flood"), live.host(other, "good")
    assert live.status(good) == 200
    stop = threading.Event()
    refused: list[int] = []

    def hammer() -> None:
        while not stop.is_set():
            refused.append(flood(live, bad, FLOOD).get(TOO_MANY, 0))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        live.wait_for(lambda: len(refused) >= 1, timeout=60)
        statuses = [live.status(good) for _ in range(200)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses.count(200) >= 198, statuses
    assert min(refused) >= FLOOD - SUBREQUESTS - CONNECTIONS, refused


def test_slots_handed_from_request_to_request_are_all_given_back(live: LivePlatform) -> None:
    """Concurrent floods of one version hand their slots to each other's waiters. A slot handed
    over by resolving the waiter's promise from the releasing invocation once held a fetch() that
    never ended: every later subrequest of the version waited for it, and the floods answered 504
    at the deadline (about one in a few hundred floods; CI saw it)."""
    account = live.provision()
    live.deploy(account, "handover", FLOODER)
    host = live.host(account, "handover")
    deadline = threading.Event()
    statuses: list[int] = []

    def hammer() -> None:
        while not deadline.is_set():
            statuses.append(live.get(host, f"/?n={FLOOD // 4}").status_code)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        live.wait_for(lambda: len(statuses) >= 600, timeout=120)
    finally:
        deadline.set()
        for thread in threads:
            thread.join()
    assert set(statuses) == {200}, {status: statuses.count(status) for status in set(statuses)}
    assert flood(live, host, SUBREQUESTS // 2).get(TOO_MANY, 0) == 0
