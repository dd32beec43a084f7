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
from mayfly.storage.tables import blobs, r2_objects
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
