"""A tenant that freezes its shard from code that runs after its response (issue 9, item 2): an
endless loop in ctx.waitUntil, in a WebSocket message handler or in a streamed body's pull(), while a neighbour's slow request
is in flight on the same (single) shard. The dispatcher used to count only requests not yet
answered, so each freeze named the neighbour alone, with certainty, and quarantined it; now the
offender counts as running until its code provably stopped, the offender is quarantined within its
first incidents, and the neighbour never is."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SLOW = """
export default {
  async fetch() {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    return new Response("slow done");
  },
};
"""
WAIT_UNTIL_SPIN = """
export default {
  async fetch(request, env, ctx) {
    ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 800)).then(() => { while (true) {} }));
    return new Response("bye");
  },
};
"""
WEBSOCKET_SPIN = """
export default {
  async fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    server.addEventListener("message", () => { while (true) {} });
    return new Response(null, { status: 101, webSocket: client });
  },
};
"""
STREAM_SPIN = """
export default {
  async fetch() {
    let pulls = 0;
    return new Response(new ReadableStream({
      async pull(controller) {
        if (pulls++ === 0) return controller.enqueue(new TextEncoder().encode("x"));
        await new Promise((resolve) => setTimeout(resolve, 800));
        while (true) {}
      },
    }));
  },
};
"""
ROUNDS = 4


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path, shards=1))
    assert live.dp is not None
    live.dp.on_incident = live.platform.handle_incident  # as `mayfly serve` wires it
    yield live
    live.close()


def quarantined(live: LivePlatform, account: dict[str, Any], script: str) -> bool:
    """Asked of the API (10060), not of the Worker: a request to the attacker would attack."""
    response = live.api.get(
        f"accounts/{account['id']}/workers/scripts/{script}/settings",
        headers=auth(account["apiToken"]),
    )
    codes = [e.get("code") for e in response.json().get("errors") or []]
    assert response.status_code == 200 or 10060 in codes, response.text
    return 10060 in codes


def rounds(live: LivePlatform, source: str, attack: Callable[[str], None]) -> dict[str, Any]:
    """Up to ROUNDS times: the victim's slow request, then the attack (the attacker's Worker is
    `source`) while it is in flight; until the attacker is quarantined. What happened."""
    victim, attacker = live.provision(), live.provision()
    victim_version = live.deploy(victim, "slow", SLOW)
    attacker_version = live.deploy(attacker, "spinner", source)
    victim_host, attacker_host = live.host(victim, "slow"), live.host(attacker, "spinner")
    incidents_seen = 0
    for _ in range(ROUNDS):
        if quarantined(live, attacker, "spinner") or quarantined(live, victim, "slow"):
            break
        request = threading.Thread(target=lambda: live.status(victim_host, timeout=15.0))
        request.start()
        live.wait_for(
            lambda: (
                victim_version
                in [r.version_id for s in live.shards() for r in s.in_flight.values()]
            )
        )
        attack(attacker_host)
        live.wait_for(
            lambda seen=incidents_seen: len(live.supervisor.incidents) > seen, timeout=30.0
        )
        incidents_seen = len(live.supervisor.incidents)
        request.join(20)
        live.wait_for(lambda: bool(live.shards()) and live.shards()[0].ready.is_set())
    return {
        "incidents": list(live.supervisor.incidents),
        "victim": victim_version,
        "attacker": attacker_version,
        "victim_quarantined": quarantined(live, victim, "slow"),
        "attacker_quarantined": quarantined(live, attacker, "spinner"),
        "victim_answer": live.get(victim_host).text,
    }


def spin_in_wait_until(live: LivePlatform) -> Callable[[str], None]:
    def attack(host: str) -> None:
        assert live.get(host).text == "bye"  # answered at once; the loop starts 800 ms later

    return attack


def spin_in_websocket(live: LivePlatform) -> Callable[[str], None]:
    def attack(host: str) -> None:
        sock = socket.create_connection(("127.0.0.1", live.port))
        with connect(f"ws://{host}/", sock=sock, open_timeout=10, close_timeout=1) as ws:
            ws.send("go")  # its handler never returns
            sock.close()

    return attack


def spin_in_a_body(live: LivePlatform, sockets: list[socket.socket]) -> Callable[[str], None]:
    def attack(host: str) -> None:
        sock = socket.create_connection(("127.0.0.1", live.port))
        sockets.append(sock)  # left open: the client is still reading the body
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200")

    return attack


def assert_attacker_quarantined(outcome: dict[str, Any]) -> None:
    incidents = outcome["incidents"]
    attacker = outcome["attacker"]
    assert incidents, "no incident"
    assert outcome["attacker_quarantined"], incidents
    assert not outcome["victim_quarantined"], incidents
    assert outcome["victim_answer"] == "slow done"
    for incident in incidents:
        assert attacker in incident.suspects, incident
        assert not (incident.certain and incident.suspects != (attacker,)), incident
    # Quarantined within its first two incidents (the second ambiguous one at the latest).
    assert len(incidents) <= 2, incidents


def test_an_endless_loop_in_wait_until_is_blamed_on_its_worker(live: LivePlatform) -> None:
    outcome = rounds(live, WAIT_UNTIL_SPIN, spin_in_wait_until(live))
    assert_attacker_quarantined(outcome)


def test_an_endless_loop_in_a_websocket_handler_is_blamed_on_its_worker(
    live: LivePlatform,
) -> None:
    outcome = rounds(live, WEBSOCKET_SPIN, spin_in_websocket(live))
    assert_attacker_quarantined(outcome)


def test_an_endless_loop_in_a_streamed_body_is_blamed_on_its_worker(live: LivePlatform) -> None:
    sockets: list[socket.socket] = []
    try:
        outcome = rounds(live, STREAM_SPIN, spin_in_a_body(live, sockets))
    finally:
        for sock in sockets:
            sock.close()
    assert_attacker_quarantined(outcome)
