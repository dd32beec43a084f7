"""The two sides of the database: reads never wait for a writer, and never write."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError

from mayfly.storage.database import Database
from mayfly.storage.tables import used_challenges
from tests.clock import ManualClock


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def test_a_read_completes_while_a_write_transaction_is_held(db: Database) -> None:
    now = ManualClock().now()
    with db.begin() as conn:
        conn.execute(insert(used_challenges).values(id="a", expires_at=now))
    holding, release = threading.Event(), threading.Event()
    released: list[bool] = []

    def writer() -> None:
        with db.begin() as conn:  # BEGIN IMMEDIATE on SQLite: the write lock, held
            conn.execute(update(used_challenges).values(id="b"))
            holding.set()
            # Held until the read is done: a read that waited for the writer would get the lock
            # only when this gives up.
            released.append(release.wait(60))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        with db.read() as conn:
            seen = conn.execute(select(used_challenges.c.id)).scalars().all()
    finally:
        release.set()
        thread.join(90)
    assert seen == ["a"]  # the snapshot before the uncommitted write
    assert released == [True], "the read waited for the writer to give up its lock"
    with db.read() as conn:
        assert conn.execute(select(used_challenges.c.id)).scalars().all() == ["b"]


def test_the_read_side_refuses_writes(db: Database) -> None:
    with pytest.raises(DBAPIError), db.read() as conn:
        conn.execute(text("DELETE FROM used_challenges"))


def test_writers_queue_instead_of_failing(db: Database) -> None:
    now = ManualClock().now()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(20):
                with db.begin() as conn:
                    conn.execute(insert(used_challenges).values(id=f"{i}-{j}", expires_at=now))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with db.read() as conn:
        assert len(conn.execute(select(used_challenges.c.id)).all()) == 120
