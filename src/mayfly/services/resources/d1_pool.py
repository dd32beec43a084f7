"""Open SQLite connections of D1 databases, one per database file, each serving one request at a
time (D1 runs a database's requests one after the other).

Opening a connection per request would cost more than the query: closing a WAL database's last
connection checkpoints it and deletes the WAL, with an fsync each time (bench/d1.py measured ~40
inserts/s that way). The pool keeps up to MAX_OPEN connections, least recently used closed first;
a database that is deleted has its connection closed before its files go.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MAX_OPEN = 256


class Busy(Exception):
    """The database's previous requests did not finish in time."""


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    conn: sqlite3.Connection | None = None


class Pool:
    def __init__(self, opener: Callable[[Path], sqlite3.Connection], max_open: int = MAX_OPEN):
        self._open = opener
        self._max_open = max_open
        self._guard = threading.Lock()
        self._entries: OrderedDict[Path, _Entry] = OrderedDict()

    @contextmanager
    def connection(self, path: Path, wait_seconds: float) -> Iterator[sqlite3.Connection]:
        """The database's connection, for this request alone (Busy after `wait_seconds`)."""
        key = path.absolute()
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
        if not entry.lock.acquire(timeout=max(0.001, wait_seconds)):
            raise Busy(str(path))
        try:
            if entry.conn is None:
                entry.conn = self._open(path)
            yield entry.conn
        finally:
            entry.lock.release()
            self._evict()

    def close(self, path: Path) -> None:
        """Close the database's connection (waiting for its request): its files may go."""
        key = path.absolute()
        with self._guard:
            entry = self._entries.pop(key, None)
        if entry is None:
            return
        with entry.lock:
            if entry.conn is not None:
                entry.conn.close()
                entry.conn = None

    def _evict(self) -> None:
        while True:
            with self._guard:
                if len(self._entries) <= self._max_open:
                    return
                for key, entry in self._entries.items():
                    if entry.lock.acquire(blocking=False):
                        del self._entries[key]
                        break
                else:
                    return  # every connection is serving a request
            try:
                if entry.conn is not None:
                    entry.conn.close()
                    entry.conn = None
            finally:
                entry.lock.release()
