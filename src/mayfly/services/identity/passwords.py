"""argon2 hashing on a small dedicated pool, so a sign-up or log-in flood cannot starve the API.

Every argon2 call of a web request runs here, never on the shared thread pool that database calls
use. At most `threads` hashes run at once and `queue` more wait; past that the caller gets
RateLimited (429, Retry-After) at once instead of a growing backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mayfly.errors import RateLimited

T = TypeVar("T")
BUSY_RETRY_AFTER = 2
PASSWORD_THREAD_NICENESS = 10


class PasswordPool:
    def __init__(self, hasher: PasswordHasher, threads: int = 1, queue: int = 8):
        self.hasher = hasher
        self.threads = max(1, threads)
        self.capacity = self.threads + max(0, queue)
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self.verify_now, password_hash, password)

    def verify_now(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if not self._slots.acquire(blocking=False):
            raise RateLimited(
                "The server is busy checking passwords; retry in a few seconds.",
                retry_after=BUSY_RETRY_AFTER,
            )
        try:
            future: Future[T] = self._pool().submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        # Released when the hash finishes, even if the waiting request went away meanwhile.
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.threads,
                    thread_name_prefix="mayfly-passwords",
                    initializer=_lower_priority,
                )
            return self._executor


def _lower_priority() -> None:
    """Hashing threads (and argon2's lane threads, which inherit it) yield the CPU to the API.

    Linux schedules threads as tasks, so this nices only the calling thread.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_THREAD_NICENESS)
