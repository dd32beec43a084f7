"""What the data plane tells the control plane when a tenant took a shard down.

The supervisor kills a shard that stops answering its probe (a tenant's CPU loop: workerd
enforces no CPU limit, workerd-facts §5a), that grows over its memory budget, or that dies on its
own (V8 aborts the whole process when one isolate runs out of heap, §5b). Every such kill becomes
one `Incident` naming the versions whose requests were in flight on that shard at that moment,
the prime suspect first (the request that started last: a frozen process starts nothing new).

`certain` is True only when every request in flight belonged to one version and the evidence
agrees (a frozen shard was burning CPU; a crashed one reported a fatal error): an innocent tenant
whose request merely shared the shard is then not among the suspects at all. When several
versions were in flight, or the in-flight set is not known exactly, `certain` is False.

The rule the control plane applies (services/workers/quarantine.py):
  * certain   -> quarantine the (single) suspect at once;
  * uncertain -> a version is quarantined once it was the prime suspect of two uncertain
                 incidents within a window; one ambiguous incident alone never punishes anyone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

IncidentKind = Literal["unresponsive", "memory", "crashed"]


@dataclass(frozen=True)
class Incident:
    kind: IncidentKind
    shard: str  # e.g. "shard 1 (pid 1234)": for logs and the audit entry
    suspects: tuple[str, ...]  # version ids, prime suspect first; may be empty
    certain: bool  # True only if `suspects` is exactly one version and nothing else was running
    detail: str  # why the shard was killed, in words


# Called once per kill, after the shard is dead and before its replacement serves (bounded by a
# timeout: a slow control plane delays no restart for long). It runs on the caller's event loop
# (the DataPlane crosses from the supervisor's thread); it must not raise.
IncidentSink = Callable[[Incident], Awaitable[None]]
