"""Where D1's SQL runs: its own threads, and at most PER_ACCOUNT requests of one account at once.

Not asyncio's default executor (6 threads on 2 cores, shared by every API handler and the data
plane's route lookups): queries that run to their deadline, or wait for their database's previous
request, would otherwise stall the whole server. An account's requests past PER_ACCOUNT (running
or waiting for their database) get D1's "overloaded" at once instead of a thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from mayfly.errors import D1QueryError

THREADS = 16
PER_ACCOUNT = 4
OVERLOADED = "D1_ERROR: D1 DB is overloaded. Requests queued for too long.: SQLITE_BUSY"
T = TypeVar("T")


class D1Runner:
    def __init__(self, threads: int = THREADS, per_account: int = PER_ACCOUNT) -> None:
        self.per_account = per_account
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="d1")
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on D1's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def in_flight(self, account_id: str) -> int:
        with self._lock:
            return self._in_flight.get(account_id, 0)

    @contextmanager
    def slot(self, account_id: str) -> Iterator[None]:
        """One of the account's PER_ACCOUNT requests, or D1's "overloaded"."""
        with self._lock:
            held = self._in_flight.get(account_id, 0)
            if held >= self.per_account:
                raise D1QueryError(OVERLOADED)
            self._in_flight[account_id] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._in_flight.pop(account_id, 1) - 1
                if left > 0:
                    self._in_flight[account_id] = left
