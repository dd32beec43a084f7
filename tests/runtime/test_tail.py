"""Live tails through real workerd shards and the real control plane: a tenant's console.log and
its exceptions reach an open tail session's WebSocket, batched; nobody tailing means no events."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

TAIL_EVENTS = "/internal/v1/tail-events"

CHATTY = """
export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    console.log("hello from", pathname, { n: 1 });
    if (pathname === "/throw") throw new TypeError("boom from " + pathname);
    console.error("done with", pathname);
    return new Response("ok " + pathname);
  },
};
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("tail")))
    yield live
    live.close()


class Worker:
    def __init__(self, live: LivePlatform, script: str):
        self.live = live
        self.script = script
        self.account = live.provision()
        self.headers = auth(self.account["apiToken"])
        self.version_id = live.deploy(self.account, script, CHATTY)
        self.host = live.host(self.account, script)

    def get(self, path: str) -> int:
        return self.live.get(self.host, path).status_code

    def open_tail(self, filters: list[dict[str, Any]] | None = None) -> Tail:
        response = self.live.api.post(
            f"accounts/{self.account['id']}/workers/scripts/{self.script}/tails",
            headers=self.headers,
            json={"filters": filters or []},
        )
        assert response.status_code == 200, response.text
        return Tail(self, response.json()["result"])


class Tail:
    """A tail session as wrangler holds it: the API's tail, then its WebSocket (trace-v1)."""

    def __init__(self, worker: Worker, created: dict[str, Any]):
        self.worker = worker
        self.id = created["id"]
        # The API names its public URL (localhost:8787 here); the harness serves it elsewhere.
        url = urlsplit(created["url"])
        self.url = url._replace(netloc=f"127.0.0.1:{worker.live.public_port}").geturl()
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(self.url, subprotocols=["trace-v1"])
        )
        assert self.ws.subprotocol == "trace-v1"
        self.ws.send(json.dumps({"debug": False}))

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        return event

    def nothing_within(self, seconds: float) -> bool:
        try:
            self.ws.recv(timeout=seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self._stack.close()
        w = self.worker
        response = w.live.api.delete(
            f"accounts/{w.account['id']}/workers/scripts/{w.script}/tails/{self.id}",
            headers=w.headers,
        )
        assert response.status_code == 200, response.text

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def posts(live: LivePlatform) -> int:
    return live.internal.paths.count(TAIL_EVENTS)


def test_a_console_log_reaches_the_tail(live: LivePlatform) -> None:
    worker = Worker(live, "logger")
    with worker.open_tail() as tail:
        started_ms = time.time() * 1000
        assert worker.get("/hello?x=1") == 200
        event = tail.receive()
    assert event["outcome"] == "ok"
    assert event["scriptName"] == "logger"
    assert event["scriptVersion"] == {"id": worker.version_id}
    assert abs(event["eventTimestamp"] - started_ms) < 10_000
    assert [(log["level"], log["message"]) for log in event["logs"]] == [
        ("log", ["hello from", "/hello", {"n": 1}]),
        ("error", ["done with", "/hello"]),
    ]
    assert all(isinstance(log["timestamp"], int | float) for log in event["logs"])
    assert event["exceptions"] == []
    request = event["event"]["request"]
    assert request["url"] == f"http://{worker.host}/hello?x=1"
    assert request["method"] == "GET"
    assert request["headers"]["host"] == worker.host
    assert isinstance(request["cf"], dict)
    assert event["event"]["response"] == {"status": 200}


def test_an_exception_reaches_the_tail(live: LivePlatform) -> None:
    worker = Worker(live, "thrower")
    with worker.open_tail() as tail:
        assert worker.get("/throw") == 500
        event = tail.receive()
    assert event["outcome"] == "exception"
    assert event["logs"][0]["message"] == ["hello from", "/throw", {"n": 1}]
    [exception] = event["exceptions"]
    assert (exception["name"], exception["message"]) == ("TypeError", "boom from /throw")
    assert "index.js" in exception["stack"]


def test_filters_apply(one_shard: LivePlatform) -> None:
    """wrangler tail --status error: only the failing requests' events come through. One shard
    posts its events in order, so a /fine event let through would come before the /throw event
    requested after it: the second /throw's event is the witness that the first /fine's was
    filtered out."""
    worker = Worker(one_shard, "filtered")
    with worker.open_tail([{"outcome": ["exception"]}]) as tail:
        for _ in range(2):
            assert worker.get("/fine") == 200
            assert worker.get("/throw") == 500
            event = tail.receive()
            assert event["outcome"] == "exception"
            assert event["event"]["request"]["url"].endswith("/throw")
        assert tail.nothing_within(0)


def test_events_are_batched(live: LivePlatform) -> None:
    worker = Worker(live, "busy")
    with worker.open_tail() as tail:
        assert worker.get("/warm") == 200
        tail.receive()
        before = posts(live)
        count = 60
        with (
            httpx.Client(timeout=30, headers={"host": worker.host}) as client,
            concurrent.futures.ThreadPoolExecutor(6) as pool,
        ):
            url = f"http://127.0.0.1:{live.port}/n/"
            started = time.monotonic()
            statuses = list(pool.map(lambda i: client.get(f"{url}{i}").status_code, range(count)))
            elapsed = time.monotonic() - started
        assert statuses == [200] * count
        paths = sorted(tail.receive()["event"]["request"]["url"] for _ in range(count))
        assert paths == sorted(f"http://{worker.host}/n/{i}" for i in range(count))
        # Events wait up to 100 ms per shard (or until 100 wait): at most one POST per shard and
        # 100 ms, however many requests (and however slow the machine: the windows are counted
        # over the time the requests took). Events per POST under load: bench/tail.py.
        windows = int(elapsed / 0.1) + 2
        made = posts(live) - before
        assert made <= windows * live.settings.shards, (made, elapsed)


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    """One shard: every tail event goes through one TailSink, whose flushes post in order."""
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("tail-one"), shards=1))
    yield live
    live.close()


def settle(live: LivePlatform, witness: Worker, tail: Tail) -> int:
    """The tail-event POSTs so far, once anything queued before now has been posted: two requests
    to a tailed witness, one after the other, and their events seen on its tail (events of the one
    shard are flushed together, the earlier ones first). Returns the count."""
    for n in range(2):
        assert witness.get(f"/witness-{n}") == 200
        assert tail.receive()["event"]["request"]["url"].endswith(f"/witness-{n}")
    return posts(live)


def test_nobody_tailing_means_no_events(one_shard: LivePlatform) -> None:
    """No event is posted for a Worker nobody tails: each check waits for a tailed witness's own
    events to come through (its two POSTs, `+ 2`) rather than for a fixed time."""
    live = one_shard
    quiet, watched, witness = (Worker(live, n) for n in ("quiet", "watched", "witness"))
    with witness.open_tail() as witnessed:
        before = settle(live, witness, witnessed)
        for _ in range(10):
            assert quiet.get("/") == 200
        assert settle(live, witness, witnessed) == before + 2

        # Tailing another Worker changes nothing for this one.
        with watched.open_tail() as tail:
            before = settle(live, witness, witnessed)
            for _ in range(10):
                assert quiet.get("/") == 200
            assert settle(live, witness, witnessed) == before + 2
            assert tail.nothing_within(0)

            assert watched.get("/seen") == 200
            assert tail.receive()["event"]["request"]["url"].endswith("/seen")

        # Closing the last tail invalidates the route: the next requests produce nothing.
        before = settle(live, witness, witnessed)
        for _ in range(10):
            assert watched.get("/unseen") == 200
        assert settle(live, witness, witnessed) == before + 2


def test_a_redeploy_while_tailed_keeps_tailing(live: LivePlatform) -> None:
    worker = Worker(live, "redeployed")
    with worker.open_tail() as tail:
        assert worker.get("/before") == 200
        assert tail.receive()["scriptVersion"] == {"id": worker.version_id}
        new_version = live.deploy(worker.account, worker.script, CHATTY)
        assert worker.get("/after") == 200
        event = tail.receive()
        assert event["event"]["request"]["url"].endswith("/after")
        assert event["scriptVersion"] == {"id": new_version}
