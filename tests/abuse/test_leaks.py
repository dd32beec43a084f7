"""Nothing grows without bound: tails end with their WebSocket, their account or their lifetime;
expired upload sessions and the files only they kept are purged; orphan blob files are swept."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from mayfly.app import Platform
from mayfly.errors import RateLimited
from mayfly.services.identity.sessions import MAX_SESSIONS_PER_USER
from mayfly.services.operations.housekeeping import ORPHAN_BLOB_AGE_SECONDS, Housekeeper
from mayfly.services.resources.assets import TOKEN_LIFETIME
from mayfly.services.workers.tail import CONNECT_GRACE_SECONDS, MAX_SESSIONS_PER_ACCOUNT, TailHub
from mayfly.storage import tables
from mayfly.storage.blobs import sha256_hex
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, upload_body
from tests.integration.test_assets import SITE, upload_assets, wrangler_hash


class RecordingInvalidator:
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def invalidate(self, hosts: list[str]) -> None:
        self.hosts.extend(hosts)


@pytest.fixture
def invalidations(platform: Platform) -> RecordingInvalidator:
    recorder = RecordingInvalidator()
    platform.set_invalidator(recorder)
    return recorder


def tailed_worker(client: TestClient, script: str = "hello") -> tuple[dict[str, Any], str]:
    account = provision(client)["account"]
    base = f"accounts/{account['id']}/workers/scripts/{script}"
    assert client.put(base, headers=auth(account["apiToken"]), **upload_body()).status_code == 200
    return account, base


def open_tail(client: TestClient, account: dict[str, Any], base: str) -> dict[str, Any]:
    response = client.post(base + "/tails", headers=auth(account["apiToken"]), json={})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()["result"]
    return created


def socket_path(created: dict[str, Any]) -> str:
    return "ws://testserver/tail/" + created["url"].rsplit("/", 1)[1]


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_tail_whose_websocket_goes_away_is_closed_and_the_worker_untailed(
    client: TestClient, platform: Platform, invalidations: RecordingInvalidator
) -> None:
    account, base = tailed_worker(client)
    host = f"hello.{account['name']}.localhost"
    created = open_tail(client, account, base)
    assert invalidations.hosts[-1] == host  # the first tail: the route now says "tailed"
    opened = len(invalidations.hosts)
    hub = platform.services.tails.hub
    with client.websocket_connect(socket_path(created), subprotocols=["trace-v1"]) as ws:
        ws.send_text('{"debug":false}')
        assert platform.services.routing.route(host).tail is True
    # The client vanished without DELETE (a killed `wrangler tail`). (The test client cancels
    # the handler as it leaves, which may cut the route invalidation short; under uvicorn it
    # completes: tests/abuse/test_tail_runtime.py.)
    wait_until(lambda: len(hub) == 0)
    assert platform.services.routing.route(host).tail is False
    assert invalidations.hosts[opened:] in ([], [host])
    assert hub.publish(account["id"], "hello", [{"outcome": "ok"}]) == 0
    # wrangler's DELETE on exit still succeeds; the URL no longer opens a socket.
    deleted = client.delete(f"{base}/tails/{created['id']}", headers=auth(account["apiToken"]))
    assert deleted.status_code == 200
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(socket_path(created)) as ws:
        ws.receive_text()


def test_a_tail_url_opens_one_socket(client: TestClient, platform: Platform) -> None:
    account, base = tailed_worker(client)
    created = open_tail(client, account, base)
    with client.websocket_connect(socket_path(created)) as first:
        first.send_text("{}")
        with (
            pytest.raises(WebSocketDisconnect),
            client.websocket_connect(socket_path(created)) as second,
        ):
            second.receive_text()
        platform.services.tails.hub.publish(account["id"], "hello", [{"outcome": "ok"}])
        assert first.receive_json()["outcome"] == "ok"


@pytest.mark.parametrize("ending", ["expiry", "reaped"])
def test_tails_end_when_their_account_expires_or_is_reaped(
    client: TestClient,
    platform: Platform,
    clock: ManualClock,
    invalidations: RecordingInvalidator,
    ending: str,
) -> None:
    account, base = tailed_worker(client)
    created = open_tail(client, account, base)
    tails = platform.services.tails
    with client.websocket_connect(socket_path(created)) as ws:
        ws.send_text("{}")
        clock.advance(3601)
        if ending == "reaped":
            asyncio.run(platform.services.reaper.run_once())
        # On the socket's own event loop, as the housekeeper runs in `mayfly serve`.
        assert ws.portal.call(tails.sweep) == 1
        message = ws.receive()
        assert message == {"type": "websocket.close", "code": 1000, "reason": ""}
    assert len(tails.hub) == 0
    assert not tails.hub.is_tailed(account["id"], "hello")


def test_a_tail_never_connected_is_closed_after_a_grace_period(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account, base = tailed_worker(client)
    open_tail(client, account, base)
    tails = platform.services.tails
    assert asyncio.run(tails.sweep()) == 0
    clock.advance(CONNECT_GRACE_SECONDS + 1)
    assert asyncio.run(tails.sweep()) == 1
    assert len(tails.hub) == 0


def test_tails_per_account_are_bounded(client: TestClient, platform: Platform) -> None:
    account, base = tailed_worker(client)
    for _ in range(MAX_SESSIONS_PER_ACCOUNT):
        open_tail(client, account, base)
    refused = client.post(base + "/tails", headers=auth(account["apiToken"]), json={})
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == 10429
    assert "Retry-After" in refused.headers
    other, other_base = tailed_worker(client)
    open_tail(client, other, other_base)  # other accounts are not affected


def test_is_tailed_is_safe_while_the_event_loop_changes_sessions() -> None:
    """Route lookups ask from worker threads while the loop opens and closes tails."""
    hub = TailHub()
    now = ManualClock().now()
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        try:
            while not stop.is_set():
                hub.is_tailed("a", "w")
        except BaseException as exc:  # a RuntimeError: dictionary changed size during iteration
            errors.append(exc)

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for thread in askers:
        thread.start()
    try:
        for i in range(3000):
            session = hub.open(f"account{i % 7}", "w", [], now)
            if i % 3:
                hub.remove(session)
    except RateLimited:
        pass
    finally:
        stop.set()
        for thread in askers:
            thread.join()
    assert errors == []


@pytest.fixture
def long_lived(tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    platform = Platform.create(make_settings(tmp_path, temporary_ttl=7 * 24 * 3600), clock=clock)
    yield platform
    platform.db.dispose()


def asset_hashes(platform: Platform, account_id: str) -> set[str]:
    with platform.db.read() as conn:
        return set(
            conn.execute(
                select(tables.asset_files.c.hash).where(
                    tables.asset_files.c.account_id == account_id
                )
            ).scalars()
        )


def test_expired_upload_sessions_are_purged_with_the_files_only_they_kept(
    long_lived: Platform, clock: ManualClock
) -> None:
    with TestClient(long_lived.public_app(), base_url="http://testserver/client/v4/") as client:
        account = provision(client)["account"]
        completion, _ = upload_assets(client, account, "site", SITE)
        deployed = client.put(
            f"accounts/{account['id']}/workers/scripts/site",
            headers=auth(account["apiToken"]),
            **upload_body(assets={"jwt": completion}),
        )
        assert deployed.status_code == 200, deployed.text
        # A deploy that uploaded a new file, then never completed.
        abandoned = {"/new.css": (b"body{color:teal}", "text/css; charset=utf-8")}
        upload_assets(client, account, "site", dict(SITE, **abandoned))
    extra = wrangler_hash(b"body{color:teal}", "/new.css")
    assert extra in asset_hashes(long_lived, account["id"])
    housekeeper = Housekeeper(long_lived.services)
    assert housekeeper.purge_upload_sessions() == 0  # still live

    clock.advance(2 * TOKEN_LIFETIME.total_seconds() + 1)
    assert housekeeper.purge_upload_sessions() == 1
    with long_lived.db.read() as conn:
        sessions = conn.execute(
            select(func.count()).select_from(tables.asset_upload_sessions)
        ).scalar_one()
        blob_rows = set(
            conn.execute(
                select(tables.blobs.c.sha256).where(tables.blobs.c.account_id == account["id"])
            ).scalars()
        )
    assert sessions == 0
    hashes = asset_hashes(long_lived, account["id"])
    assert extra not in hashes
    assert hashes == {wrangler_hash(d, p) for p, (d, _) in SITE.items()}  # the deployed files
    blob_dir = long_lived.settings.data_dir / "blobs" / account["id"]
    teal = sha256_hex(b"body{color:teal}")
    assert teal not in blob_rows
    assert not (blob_dir / teal[:2] / teal).exists()
    data, _ = long_lived.services.assets.read(account["id"], wrangler_hash(b"body{}", "/style.css"))
    assert data == b"body{}"


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_orphan_blob_files_are_swept_once_old(client: TestClient, platform: Platform) -> None:
    account, _ = tailed_worker(client)
    blobs = platform.services.ctx.blobs
    root = platform.settings.data_dir / "blobs" / account["id"]
    referenced = [p for p in root.glob("*/*") if p.is_file()]
    assert referenced
    # A crash (here: a failure) after the file was written, before its row was committed.
    with pytest.raises(RuntimeError), platform.db.begin() as conn:
        crashed = blobs.put(conn, account["id"], b"never committed")
        raise RuntimeError("crash")
    orphan = root / crashed[:2] / crashed
    leftover_tmp = orphan.with_name(orphan.name + "1a2b.tmp")
    leftover_tmp.write_bytes(b"half")
    fresh = blobs.stage(account["id"], b"staged for a transaction still running")
    fresh_path = root / fresh[:2] / fresh
    old = ORPHAN_BLOB_AGE_SECONDS + 60
    for path in [orphan, leftover_tmp, *referenced]:
        age(path, old)

    housekeeper = Housekeeper(platform.services)
    assert housekeeper.sweep_blobs() == 2
    assert not orphan.exists() and not leftover_tmp.exists()
    assert fresh_path.exists()  # young: its transaction may still commit
    assert all(p.exists() for p in referenced)

    # A writer that re-uses an old orphan touches it, so the sweep leaves it alone.
    age(fresh_path, old)
    with platform.db.begin() as conn:
        blobs.put(conn, account["id"], b"staged for a transaction still running")
    assert housekeeper.sweep_blobs() == 0
    assert fresh_path.exists()


def test_one_housekeeping_pass_cleans_tails_limiters_and_blobs(
    client: TestClient, platform: Platform, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    account, base = tailed_worker(client)
    open_tail(client, account, base)  # never connected
    users = platform.services.users
    users.signups.record("192.0.2.1", clock.now().timestamp())
    orphan_digest = platform.services.ctx.blobs.stage(account["id"], b"orphan")
    orphan = platform.settings.data_dir / "blobs" / account["id"] / orphan_digest[:2]
    orphan = orphan / orphan_digest
    age(orphan, ORPHAN_BLOB_AGE_SECONDS + 60)
    clock.advance(3600 + 1)  # past the tail's grace and the sign-up window
    caplog.set_level("INFO", logger="mayfly.housekeeping")
    asyncio.run(Housekeeper(platform.services).run_once())
    assert len(platform.services.tails.hub) == 0
    assert len(users.signups) == 0
    assert not orphan.exists()
    assert "housekeeping: 1 tails closed" in caplog.text


def test_a_user_keeps_at_most_max_sessions_the_newest_win(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    platform = Platform.create(make_settings(tmp_path, database_url=database_url), clock=clock)
    sessions = platform.services.sessions
    user = platform.services.users._insert("ada@example.com", "not-a-real-hash")
    first = sessions.create(user.id)
    clock.advance(1)
    cookies = [sessions.create(user.id) for _ in range(MAX_SESSIONS_PER_USER + 5)]
    with platform.db.read() as conn:
        kept = conn.execute(
            select(func.count())
            .select_from(tables.sessions)
            .where(tables.sessions.c.user_id == user.id)
        ).scalar_one()
    assert kept == MAX_SESSIONS_PER_USER
    assert sessions.lookup(first) is None  # the oldest went first
    assert sessions.lookup(cookies[-1]) is not None  # never the one just made
    platform.db.dispose()
