"""On PostgreSQL, a writer about to name a blob and a deleter that finds it unnamed are ordered by
the blob's row lock (services/resources/r2_blobs.py): the deleter waits, looks again once the
writer committed, and keeps the blob the new object needs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.resources.r2_blobs import hold_blob, release_blobs
from mayfly.storage.resource_tables import r2_buckets, r2_objects
from mayfly.storage.tables import blobs
from tests.clock import ManualClock
from tests.conftest import make_settings, provision
from tests.integration.test_r2 import create_bucket, put_object

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_platform(postgres_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = Platform.create(
        make_settings(tmp_path, database_url=postgres_url), clock=ManualClock()
    )
    yield platform
    platform.db.dispose()


def waiting_on_a_lock(platform: Platform) -> bool:
    with platform.db.read() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        )


def test_a_release_waits_for_the_writer_that_holds_the_blob(pg_platform: Platform) -> None:
    with TestClient(pg_platform.public_app(), base_url="http://testserver/client/v4/") as client:
        account = provision(client)["account"]
        create_bucket(client, account, "held")
        assert put_object(client, account, "held", "old", b"shared").status_code == 200
    with pg_platform.db.read() as conn:
        old = conn.execute(select(r2_objects).where(r2_objects.c.key == "old")).one()
    digest, account_id = old.blob_sha256, old.account_id
    holding = threading.Event()
    finish = threading.Event()

    def writer() -> None:  # names the blob in a second object, slowly
        with pg_platform.db.begin() as conn:
            hold_blob(conn, account_id, digest)
            holding.set()
            assert finish.wait(30)
            row = {**old._asdict(), "key": "new", "version": "v2"}
            conn.execute(insert(r2_objects).values(**row))

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(30)
    released = threading.Thread(target=lambda: _release_old(pg_platform, account_id, digest))
    released.start()
    deadline = time.monotonic() + 30
    while not waiting_on_a_lock(pg_platform):  # the deleter is blocked on the writer's lock
        assert time.monotonic() < deadline, "the release never waited for the writer"
        time.sleep(0.01)
    finish.set()
    thread.join(30)
    released.join(30)
    with pg_platform.db.read() as conn:
        kept = conn.execute(
            select(blobs).where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        ).first()
    assert kept is not None, "the blob the new object names was deleted"


def _release_old(platform: Platform, account_id: str, digest: str) -> None:
    with platform.db.begin() as conn:
        conn.execute(r2_objects.delete().where(r2_objects.c.key == "old"))
        release_blobs(conn, platform.services.ctx, account_id, {digest})


def test_concurrent_writes_of_one_new_key_all_succeed(pg_platform: Platform) -> None:
    """Writers racing to create the same key (and the same new blob): each write succeeds, the
    last one stays, and one object row and one blob are left."""
    with TestClient(pg_platform.public_app(), base_url="http://testserver/client/v4/") as client:
        account = provision(client)["account"]
        create_bucket(client, account, "raced")
    r2 = pg_platform.services.r2
    with pg_platform.db.read() as conn:
        bucket_id = conn.execute(select(r2_buckets.c.id).where(r2_buckets.c.name == "raced")).one()[
            0
        ]
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def write() -> None:
        start.wait(30)
        try:
            r2.put_object(bucket_id, "contended", b"same bytes")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with pg_platform.db.read() as conn:
        rows = conn.execute(select(r2_objects).where(r2_objects.c.bucket_id == bucket_id)).all()
        stored = conn.execute(select(blobs).where(blobs.c.account_id == account["id"])).all()
    assert len(rows) == 1 and len(stored) == 1
