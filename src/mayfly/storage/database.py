"""The database: engine, migrations, transactions. SQLite (WAL) by default, PostgreSQL at scale.

Two sides, as Datasette splits them:

- `begin()` is the write side: one transaction at a time per database file in this process (a
  lock, then `BEGIN IMMEDIATE`, so writers queue here instead of spinning on SQLite's
  busy_timeout or failing on a lock upgrade). Keep it short: hash, read blobs and scan text before
  it, never inside.
- `read()` is the read side: a plain deferred transaction on its own connections, which on WAL
  never takes the write lock and never waits for a writer. The connections are read-only
  (`PRAGMA query_only` on SQLite, a READ ONLY transaction on PostgreSQL): a write slipped into a
  read path fails loudly instead of taking the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

from mayfly.errors import ValidationError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
WRITE_LOCK_TIMEOUT = 60.0  # seconds; a writer stuck longer than this is a bug, not load

_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock_for(key: str) -> threading.Lock:
    """One lock per database file, shared by every Database object of this process."""
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.Lock())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _refuse_nul_text(
    _conn: Connection,
    _cursor: Any,
    _statement: str,
    parameters: Any,
    _context: Any,
    executemany: bool,
) -> None:
    """PostgreSQL cannot take NUL in text (psycopg raises DataError, a 500): a 400 instead, on
    every backend alike, for any name, key or id a request brings."""
    for row in parameters if executemany else (parameters,):
        values = row.values() if isinstance(row, dict) else (row or ())
        for value in values:
            if isinstance(value, str) and "\x00" in value:
                raise ValidationError("Text cannot contain NUL characters (\\u0000).")


class WriteLockTimeout(RuntimeError):
    pass


class Database:
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._write_lock: threading.Lock | None = None
        if self.is_sqlite:
            path = url.split("///", 1)[1] if "///" in url else ""
            in_memory = path in ("", ":memory:")
            if not in_memory:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            args = {"check_same_thread": False, "timeout": 10}
            self.engine: Engine = create_engine(
                url, connect_args=args, poolclass=NullPool if in_memory else None
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "connect", _sqlite_manual_transactions)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
            self._write_lock = _write_lock_for(
                str(Path(path).resolve()) if not in_memory else f"memory:{id(self)}"
            )
            if in_memory:
                self.read_engine: Engine = self.engine  # one private database: no second side
            else:
                self.read_engine = create_engine(
                    url, connect_args=args, pool_size=16, max_overflow=16
                )
                event.listen(self.read_engine, "connect", _sqlite_pragmas)
                event.listen(self.read_engine, "connect", _sqlite_read_only)
                event.listen(self.read_engine, "connect", _sqlite_manual_transactions)
                event.listen(self.read_engine, "begin", _sqlite_begin_deferred)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.read_engine = create_engine(
                url,
                pool_size=10,
                max_overflow=20,
                pool_pre_ping=True,
                execution_options={"postgresql_readonly": True},
            )
        for engine in {id(e): e for e in (self.engine, self.read_engine)}.values():
            event.listen(engine, "before_cursor_execute", _refuse_nul_text)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run at every start)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._writer(), self.engine.begin() as connection:
            if not self.is_sqlite:  # replicas starting together migrate one after the other
                connection.execute(text("SELECT pg_advisory_xact_lock(7290000)"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _writer(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        if not self._write_lock.acquire(timeout=WRITE_LOCK_TIMEOUT):
            raise WriteLockTimeout(
                f"no write transaction could start within {WRITE_LOCK_TIMEOUT:.0f} s"
            )
        try:
            yield
        finally:
            self._write_lock.release()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        with self._writer(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction (a consistent snapshot); never waits for a writer."""
        with self.read_engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
