"""Sliding-window limits per key, kept in memory by each control plane; client addresses as keys.

One limiter serves both uses: `hit` counts an event and refuses past the limit (sign-ups,
challenges…), `retry_after` + `record` count only failures (log-in lock-outs). With PostgreSQL
every limiter is `share`d: its hits live in the database (shared_limits.py), so replicas agree.

Memory is bounded: a key keeps at most `limit` timestamps (older ones can no longer decide
anything), keys are kept least-recently-hit first, those whose window has passed are pruned, and
past `max_keys` the least recently hit key is forgotten.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from mayfly.errors import RateLimited

if TYPE_CHECKING:
    from mayfly.services.core.shared_limits import SharedHits

GLOBAL = "*"  # the key of platform-wide limits
DEFAULT_MAX_KEYS = 50_000
MAX_KEY_LENGTH = 320  # an e-mail address (254) and an address group


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int,
        window_seconds: float,
        what: str,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
    ):
        self.limit = max(1, limit)
        self.window = window_seconds
        self.what = what
        self.max_keys = max_keys
        self._hits: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._shared: SharedHits | None = None

    def share(self, shared: SharedHits) -> None:
        """Keep the hits in the shared database from now on (every replica counts them)."""
        self._shared = shared

    def __len__(self) -> int:
        if self._shared is not None:
            return self._shared.keys()
        return len(self._hits)

    def hit(self, key: str, now: float, *, message: str | None = None) -> None:
        """Count one event for key, or raise RateLimited (with Retry-After) past the limit."""
        if self._shared is not None:
            wait = self._shared.hit(key[:MAX_KEY_LENGTH], self.limit, self.window, now)
        else:
            with self._lock:
                wait = self._wait(key, now)
                if not wait:
                    self._append(key, now)
        if wait:
            raise RateLimited(
                message or f"Too many {self.what}; retry in {wait} s.", retry_after=wait
            )

    def retry_after(self, key: str, now: float, *, limit: int | None = None) -> int:
        """Seconds until key may act again (0: now), without counting anything; under `limit`
        instead of the limiter's own when given (a lower one: only `limit` hits are kept)."""
        limit = self.limit if limit is None else max(1, min(limit, self.limit))
        if self._shared is not None:
            return self._shared.retry_after(key[:MAX_KEY_LENGTH], limit, self.window, now)
        with self._lock:
            return self._wait(key, now, limit)

    def record(self, key: str, now: float) -> None:
        """Count one event for key without checking the limit (e.g. a failed log-in)."""
        if self._shared is not None:
            self._shared.record(key[:MAX_KEY_LENGTH], now)
            return
        with self._lock:
            self._append(key, now)

    def count(self, key: str, now: float) -> int:
        """Events of key still inside the window (at most `limit`: older ones are not kept)."""
        if self._shared is not None:
            return min(self.limit, self._shared.count(key[:MAX_KEY_LENGTH], self.window, now))
        with self._lock:
            hits = self._hits.get(key[:MAX_KEY_LENGTH]) or []
            return sum(1 for at in hits if at > now - self.window)

    def reset(self, key: str) -> None:
        if self._shared is not None:
            self._shared.reset(key[:MAX_KEY_LENGTH])
            return
        with self._lock:
            self._hits.pop(key[:MAX_KEY_LENGTH], None)

    def prune(self, now: float) -> int:
        """Forget every key whose window has passed; returns how many were forgotten."""
        if self._shared is not None:
            return self._shared.prune(self.window, now)
        with self._lock:
            return self._prune(now)

    def _wait(self, key: str, now: float, limit: int | None = None) -> int:
        limit = self.limit if limit is None else limit
        hits = self._hits.get(key[:MAX_KEY_LENGTH])
        if not hits or len(hits) < limit:
            return 0
        # Allowed again once the limit-th most recent hit leaves the window.
        expires = hits[-limit] + self.window
        return max(1, math.ceil(expires - now)) if expires > now else 0

    def _append(self, key: str, now: float) -> None:
        key = key[:MAX_KEY_LENGTH]
        hits = self._hits.pop(key, None) or []
        hits.append(now)
        if len(hits) > self.limit:
            del hits[: len(hits) - self.limit]
        self._hits[key] = hits  # now the most recently hit
        if len(self._hits) > self.max_keys:
            self._prune(now)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)

    def _prune(self, now: float) -> int:
        # Least recently hit first: stop at the first key still inside its window.
        pruned = 0
        horizon = now - self.window
        while self._hits:
            key, hits = next(iter(self._hits.items()))
            if hits and hits[-1] > horizon:
                break
            del self._hits[key]
            pruned += 1
        return pruned


# -- client addresses ----------------------------------------------------------------------------


class _Peer(Protocol):
    @property
    def host(self) -> str: ...


class _Connection(Protocol):
    @property
    def client(self) -> _Peer | None: ...


def address_group(host: str) -> str:
    """The key a client address is limited under: IPv4 as is, IPv6 by its /64.

    One IPv6 customer usually holds a whole /64, so each of its addresses must not get a fresh
    quota. IPv4-mapped IPv6 addresses count as their IPv4 address.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_address(connection: _Connection) -> str:
    """Who is calling, as the limits see it: the peer, or the address a trusted proxy forwarded
    (uvicorn rewrites the peer when `--forwarded-allow-ips` trusts it), grouped."""
    client = connection.client
    return address_group(client.host) if client is not None else "unknown"
