"""Recycling: a shard over its budget is replaced by one that accepts before the old one stops
accepting; the old one drains. No request is lost, and the hot Workers move with the shard."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mayfly.runtime.shard import ShardLauncher
from mayfly.runtime.supervisor import Supervisor
from tests.fakes.control_plane import FakeControlPlane, esm
from tests.runtime.harness import LiveDataPlane, platform_settings, require_workerd
from tests.runtime.test_supervisor import eventually, fake, gone, http_get, launch, limits, listener

__all__ = ["launch", "listener"]  # fixtures

SECRET = "recycle-secret"
# Each Worker holds ~0.5 MB of state, so that the shards' memory visibly grows.
WORKER = """
const state = new Array(64 * 1024).fill(%d);
export default {
  async fetch(request) {
    await scheduler.wait(5);
    return new Response("worker %d " + state.length);
  },
};
"""


def test_the_replacement_accepts_before_the_old_shard_stops(
    launch: Callable[..., ShardLauncher], listener: socket.socket
) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--drain", "0.3")), 1, limits(drain_grace=5.0)
        )
        await supervisor.start()
        old = supervisor.live_shards()[0]
        port = listener.getsockname()[1]
        answers: list[str] = []
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                try:
                    answers.append(await asyncio.to_thread(http_get, port))
                except OSError as exc:
                    failures.append(exc)

        clients = [asyncio.create_task(client()) for _ in range(3)]
        await eventually(lambda: any(f"fake workerd {old.pid}" in a for a in answers))
        await supervisor.recycle(0, "asked by the test")
        new = supervisor.live_shards()[0]
        assert new.pid != old.pid
        await eventually(lambda: not old.alive)
        since = len(answers)  # and the clients go on being answered, by the new one
        await eventually(lambda: any(f"fake workerd {new.pid}" in a for a in answers[since:]))
        stop.set()
        await asyncio.gather(*clients)
        assert failures == []
        assert any(f"fake workerd {old.pid}" in a for a in answers)
        assert any(f"fake workerd {new.pid}" in a for a in answers)
        assert old.returncode == 0
        kinds = [e.kind for e in supervisor.events]
        assert "recycle" in kinds and "drained" in kinds
        await supervisor.stop()
        assert gone(old.pid) and gone(new.pid)

    asyncio.run(scenario())


@dataclass
class Traffic:
    """Client threads requesting `hosts` in turn until stopped: half of them open a connection per
    request, half keep one alive. A keep-alive client does what HTTP clients do with a connection
    the server may close while idle (RFC 9112 §9.3.1): it does not reuse one that was closed, and
    resends a request once when the connection was closed as it sent it, before any byte of the
    answer (`retried` counts those). Anything else that is not the right 200 is a failure."""

    port: int
    hosts: list[str]
    expected: Callable[[str, bytes], bool]
    clients: int = 4
    stop: threading.Event = field(default_factory=threading.Event)
    ok: int = 0
    retried: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Traffic:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.clients)
        self._runs = [
            self._pool.submit(self._client, index, keep_alive=index % 2 == 1)
            for index in range(self.clients)
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for run in self._runs:
            run.result(60)
        self._pool.shutdown()

    def _client(self, index: int, *, keep_alive: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        turn = index
        while not self.stop.is_set():
            host = self.hosts[turn % len(self.hosts)]
            turn += 1
            if conn is not None and keep_alive and closed_by_peer(conn):
                conn.close()
                conn = None
            if conn is None or not keep_alive:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                fresh = True
            else:
                fresh = False
            try:
                status, body, closing = self._get(conn, host)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                conn = None
                if fresh:
                    self._fail(f"{host}: {exc!r} on a new connection")
                    continue
                with self._lock:
                    self.retried += 1
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                try:
                    status, body, closing = self._get(conn, host)
                except (OSError, http.client.HTTPException) as again:
                    self._fail(f"{host}: {again!r} on the retry")
                    conn.close()
                    conn = None
                    continue
            except (OSError, http.client.HTTPException) as exc:
                self._fail(f"{host}: {exc!r}")
                conn.close()
                conn = None
                continue
            if status == 200 and self.expected(host, body):
                with self._lock:
                    self.ok += 1
            else:
                self._fail(f"{host}: {status} {body[:100]!r}")
            if closing or not keep_alive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _get(self, conn: http.client.HTTPConnection, host: str) -> tuple[int, bytes, bool]:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read(), response.will_close

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)


def closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    sock = conn.sock
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)  # an idle connection is readable only at EOF


def worker_hosts(cp: FakeControlPlane, count: int) -> list[str]:
    hosts = []
    for index in range(count):
        cp.add_version(f"v{index}", [esm(WORKER % (index, index))])
        host = f"w{index}.acct.localhost"
        cp.serve(host, f"v{index}")
        hosts.append(host)
    return hosts


def answers_its_own(host: str, body: bytes) -> bool:
    index = host.split(".")[0][1:]
    return body == f"worker {index} {64 * 1024}".encode()


@pytest.fixture
def cp() -> FakeControlPlane:
    require_workerd()
    return FakeControlPlane(SECRET)


def start(tmp_path: Path, cp: FakeControlPlane, **settings: object) -> LiveDataPlane:
    return LiveDataPlane(
        platform_settings(tmp_path, **settings), cp.app(), SECRET, drain_grace=10.0, route_ttl=60.0
    )


@pytest.mark.runtime
def test_recycling_while_requests_flow_fails_none(tmp_path: Path, cp: FakeControlPlane) -> None:
    hosts = worker_hosts(cp, 8)
    cp.add_version(
        "v-slow",
        [
            esm(
                "export default { async fetch() {"
                " await scheduler.wait(1000); return new Response('slow'); } };"
            )
        ],
    )
    cp.serve("slow.acct.localhost", "v-slow")
    live = start(tmp_path, cp, shards=1)
    assert live.dp is not None
    try:
        with (
            Traffic(live.port, hosts, answers_its_own) as traffic,
            concurrent.futures.ThreadPoolExecutor(1) as slow_client,
        ):
            live.wait_for(lambda: traffic.ok >= 2 * len(hosts))
            for round_ in range(3):
                before = live.shards()[0]
                # In flight on the old shard when it is told to drain: it must still be answered.
                slow = slow_client.submit(live.get, "slow.acct.localhost")
                live.wait_for(
                    lambda before=before: any(  # type: ignore[misc]
                        start.version_id == "v-slow" for start in list(before.in_flight.values())
                    )
                )
                live.loop.run(live.dp.recycle(0, f"round {round_}"))
                assert live.shards()[0].pid != before.pid
                live.wait_for(lambda before=before: not before.alive)  # type: ignore[misc]
                assert before.returncode == 0
                assert slow.result(30).text == "slow"
                answered = traffic.ok  # the traffic goes on through the new shard
                live.wait_for(lambda answered=answered: traffic.ok >= answered + 15)  # type: ignore[misc]
        assert traffic.failures == []
        assert traffic.ok > 50
        assert [e.kind for e in live.supervisor.events].count("drained") == 3
    finally:
        live.close()


@pytest.mark.runtime
def test_a_shard_over_its_isolate_budget_is_recycled_without_failures(
    tmp_path: Path, cp: FakeControlPlane
) -> None:
    hosts = worker_hosts(cp, 30)
    live = start(tmp_path, cp, shards=2, shard_isolates=12)
    try:
        with Traffic(live.port, hosts, answers_its_own) as traffic:
            live.wait_for(
                lambda: [e.kind for e in live.supervisor.events].count("drained") >= 3, timeout=60
            )
        assert traffic.failures == []
        recycles = [e for e in live.supervisor.events if e.kind == "recycle"]
        assert recycles and all("budget 12" in e.detail for e in recycles)
        assert not any(
            e.kind in ("memory", "unresponsive", "exited") for e in live.supervisor.events
        )
    finally:
        live.close()


@pytest.mark.runtime
def test_the_hot_set_is_loaded_into_the_replacement(tmp_path: Path, cp: FakeControlPlane) -> None:
    hosts = worker_hosts(cp, 5)
    live = start(tmp_path, cp, shards=1)
    assert live.dp is not None
    try:
        for host in hosts:
            assert live.get(host).status_code == 200
        live.loop.run(live.dp.recycle(0, "asked by the test"))
        shard = live.shards()[0]
        health = live.loop.run(shard.probe(5.0))
        assert health["loaded"] == len(hosts)
        fetched = sum(cp.version_fetches.values())
        for host in hosts:
            response = live.get(host)
            assert response.status_code == 200 and answers_its_own(host, response.content)
        assert sum(cp.version_fetches.values()) == fetched  # nothing loaded on the request path
        # The replacement remembers how long ago each was used: a second recycle carries them on.
        hot = live.loop.run(shard.hot_set(60.0, 100, 5.0))
        assert set(hot.hosts) == set(hosts)
    finally:
        live.close()
