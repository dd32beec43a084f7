"""A killed `wrangler tail` through real workerd shards: its session closes and the Worker stops
producing tail events (before, it produced them forever)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd
from tests.runtime.test_tail import CHATTY, TAIL_EVENTS, Worker, settle

pytestmark = pytest.mark.runtime

# A tail client in its own process, so that the test can kill it as a terminal's ^\ or OOM would.
CLIENT = """
import sys, time
from websockets.sync.client import connect
with connect(sys.argv[1], subprotocols=["trace-v1"]) as ws:
    ws.send('{"debug": false}')
    print(ws.recv(timeout=30), flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    # One shard, so that a tailed witness's events coming through prove earlier ones would have.
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("tail-leak"), shards=1))
    yield live
    live.close()


def posts(live: LivePlatform) -> int:
    return live.internal.paths.count(TAIL_EVENTS)


def test_a_killed_tail_client_stops_the_workers_events(live: LivePlatform) -> None:
    account = live.provision()
    live.deploy(account, "chatty", CHATTY)
    host = live.host(account, "chatty")
    created = live.api.post(
        f"accounts/{account['id']}/workers/scripts/chatty/tails",
        headers=auth(account["apiToken"]),
        json={"filters": []},
    )
    assert created.status_code == 200, created.text
    url = urlsplit(created.json()["result"]["url"])
    url = url._replace(netloc=f"127.0.0.1:{live.public_port}")
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, url.geturl()], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while client.poll() is None and time.monotonic() < deadline:
            assert live.get(host, "/seen").status_code == 200
            time.sleep(0.2)
            if posts(live):
                break
        assert client.stdout is not None
        assert "/seen" in client.stdout.readline()  # the tail works
    finally:
        client.kill()  # SIGKILL: no close frame, no DELETE
        client.wait()
        if client.stdout is not None:
            client.stdout.close()

    hub = live.platform.services.tails.hub
    deadline = time.monotonic() + 15
    while len(hub) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hub) == 0
    assert live.platform.services.routing.route(host).tail is False
    witness = Worker(live, "witness")
    with witness.open_tail() as witnessed:
        # A batch in flight when the client died may still arrive: settle first.
        before = settle(live, witness, witnessed)
        for _ in range(10):
            assert live.get(host, "/unseen").status_code == 200
        assert settle(live, witness, witnessed) == before + 2  # the witness's own two
