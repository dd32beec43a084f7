"""Sliding-window limits per key (client address), kept in memory by each control plane."""

from __future__ import annotations

import math
import threading
from collections import deque

from mayfly.errors import RateLimited


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_seconds: float, what: str):
        self.limit = limit
        self.window = window_seconds
        self.what = what
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> None:
        """Count one event for key, or raise RateLimited (with Retry-After) past the limit."""
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                retry_after = math.ceil(hits[0] + self.window - now)
                raise RateLimited(
                    f"Too many {self.what} from this address; retry in {retry_after} s.",
                    retry_after=retry_after,
                )
            hits.append(now)
            if len(self._hits) > 100_000:
                self._prune(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
