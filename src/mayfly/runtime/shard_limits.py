"""What the Supervisor enforces on its shards (Limits) and what it reports of them (Usage, the
ShardEvents a test or an operator reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal[
    "started", "start-failed", "exited", "unresponsive", "memory", "no-ack", "recycle", "drained"
]


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    probe_timeout: float = 1.0
    probe_interval: float = 0.25
    startup_timeout: float = 10.0
    invalidate_timeout: float = 2.0
    drain_grace: float = 10.0
    max_backoff: float = 5.0
    # How long a replacement waits for the control plane to take in an incident (its quarantine
    # must be in place before the fresh shard asks for routes).
    incident_timeout: float = 2.0
    # A shard that stops answering without burning CPU is not frozen by a tenant: the host (or
    # this process: the GIL) starved it or its prober. It is given this long before it is killed.
    stall_timeout: float = 10.0
    # Recycling (see `Supervisor.recycle`): over `memory_bytes`, or holding `max_isolates` loaded
    # Workers (0: no such budget; the loader never evicts one, workerd-facts §3), a shard is
    # replaced gracefully. Over the ceiling (0: 1.5 × memory_bytes) it is killed at once: it grows
    # too fast to wait for a replacement.
    memory_ceiling_bytes: int = 0
    max_isolates: int = 0
    # The Workers a shard served within `hot_window` seconds are loaded into its replacement before
    # the old one stops accepting, the most recent first, at most `hot_max` of them (0: half of
    # max_isolates, or 1000), within `preload_timeout` seconds.
    hot_window: float = 60.0
    hot_max: int = 0
    preload_timeout: float = 10.0

    @property
    def ceiling_bytes(self) -> int:
        return self.memory_ceiling_bytes or self.memory_bytes * 3 // 2

    @property
    def hot_limit(self) -> int:
        return self.hot_max or (self.max_isolates // 2 if self.max_isolates else 1000)


@dataclass(frozen=True)
class Usage:
    rss_bytes: int  # every shard process running, draining ones included
    isolate_loads: int  # Workers loaded so far by every shard (loaded by two shards: counted twice)


@dataclass(frozen=True)
class ShardEvent:
    slot: int
    kind: EventKind
    pid: int
    at: float  # time.monotonic()
    detail: str = ""
