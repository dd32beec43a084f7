"""Blobs staged before a write transaction (hashed, files written) and recorded in one insert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from mayfly.storage.blobs import BlobStore, sha256_hex
from mayfly.storage.database import Database
from mayfly.storage.tables import accounts, blobs
from tests.clock import ManualClock


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    with database.begin() as conn:
        conn.execute(
            insert(accounts).values(
                id="a" * 32, name="acct", kind="permanent", created_at=ManualClock().now()
            )
        )
    yield database
    database.dispose()


@pytest.mark.parametrize("in_files", [True, False])
def test_staged_blobs_are_recorded_once_and_readable(
    db: Database, tmp_path: Path, in_files: bool
) -> None:
    store = BlobStore(tmp_path / "blobs" if in_files else None)
    datas = [f"file {i}".encode() for i in range(30)] + [b"file 0"]  # one twice
    digests = store.stage_many("a" * 32, datas)
    assert digests == [sha256_hex(d) for d in datas]
    with db.begin() as conn:
        store.record_many(conn, "a" * 32, list(zip(digests[:10], datas[:10], strict=True)))
    with db.begin() as conn:  # the first ten exist already: only the others are inserted
        store.record_many(conn, "a" * 32, list(zip(digests, datas, strict=True)))
    with db.read() as conn:
        assert len(conn.execute(select(blobs.c.sha256)).all()) == 30
        assert all(
            store.get(conn, "a" * 32, d) == data for d, data in zip(digests, datas, strict=True)
        )


def test_a_staged_file_removed_before_the_commit_is_written_again(
    db: Database, tmp_path: Path
) -> None:
    store = BlobStore(tmp_path / "blobs")
    [digest] = store.stage_many("a" * 32, [b"kept"])
    store.delete_account_files("a" * 32)  # a garbage collection ran between staging and commit
    with db.begin() as conn:
        store.record_many(conn, "a" * 32, [(digest, b"kept")])
    with db.read() as conn:
        assert store.get(conn, "a" * 32, digest) == b"kept"
