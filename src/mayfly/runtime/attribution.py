"""Whom a shard's incident blames (the Supervisor asks before it kills a shard).

Every kill names its cause: an `Incident` (incidents.py) lists the versions whose requests were in
flight on the shard when it froze, grew or crashed, from the marks the dispatcher writes on the
shard's stdout (shard.py). A version is `certain` only when it was all that ran and the evidence
agrees: a frozen shard must have been burning CPU (a shard that merely got no CPU on a loaded host
blames nobody), a crashed one must have reported a fatal error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from mayfly.runtime.incidents import Incident, IncidentKind
from mayfly.runtime.shard import RequestStart, Shard

# A shard that stopped answering while using less CPU than this (cores) was starved, not spinning
# (a starved one uses ~0.01; a spinning one, even on a loaded 2-core host, 0.2 or more).
SPINNING = 0.1
# How long a memory kill waits to see which of the requests in flight are still running: short ones
# that merely shared the shard finish in that time, the request that allocates does not.
_SETTLE = 0.1


def attribute(
    kind: IncidentKind,
    shard: str,
    *,
    running: list[RequestStart],
    recent: list[RequestStart],
    reported: list[str],
    corroborated: bool,
    detail: str,
) -> Incident:
    """The suspects, the prime one first: the requests still running when the shard went (in the
    order they started: the newest is the prime suspect, since a frozen process starts nothing
    new); failing that, those started since the shard was last seen well; failing that (no marks:
    a dispatcher without them), those its last health answer reported. Certain only when one
    version was all that ran and the evidence of `kind` agrees."""
    if running:
        suspects = _newest_first(r.version_id for r in running)
        certain = corroborated and len(suspects) == 1
    else:
        suspects = _newest_first(r.version_id for r in recent) or _newest_first(reported)
        certain = False
    return Incident(kind, shard, suspects, certain, detail)


def usual_suspects_first(incident: Incident, history: list[Incident]) -> Incident:
    """Orders an uncertain incident's suspects by how many recent incidents named them (the
    newest start breaking ties): a neighbour whose request started a moment after the offender's
    (its code never ran) is not the prime suspect of the next freeze too."""
    if incident.certain or len(incident.suspects) < 2:
        return incident
    seen = collections.Counter(v for past in history for v in past.suspects)
    rank = {v: i for i, v in enumerate(incident.suspects)}
    ordered = tuple(sorted(incident.suspects, key=lambda v: (-seen[v], rank[v])))
    return dataclasses.replace(incident, suspects=ordered)


def _newest_first(versions: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(reversed(list(versions))))


def health_versions(health: dict[str, Any] | None) -> list[str]:
    entries = (health or {}).get("inflight")
    if not isinstance(entries, list):
        return []
    return [str(e["version_id"]) for e in entries if isinstance(e, dict) and e.get("version_id")]


async def blame(
    shard: Shard,
    reason: str,
    detail: str,
    *,
    doomed: tuple[str, float] | None,
    stopping: bool,
    probe_interval: float,
) -> Incident | None:
    """Kill a shard that had to go (if still alive) and say whom its incident blames; None when
    the reason is no tenant's doing. `doomed`: the detail and cores measured when it was doomed."""
    kind: IncidentKind
    if reason == "memory":
        kind, since = "memory", shard.within_budget_at
        # The request that allocates is still running a moment later; a neighbour's is not.
        before = set(shard.in_flight)
        await asyncio.sleep(_SETTLE)
        shard.kill()
        await exits_within(shard, 1.0)
        await shard.close()  # the marks still in the pipe are read
        running = [r for r in shard.in_flight.values() if r.request_id in before]
        corroborated = True
    elif reason in ("unresponsive", "no-ack"):
        kind, since = "unresponsive", shard.responsive_at
        detail, cores = doomed or (detail, busy_cores(shard))
        corroborated = cores >= SPINNING
        shard.kill()
        await exits_within(shard, 1.0)
        await shard.close()
        running = list(shard.in_flight.values())
    elif reason == "exited" and not stopping:
        kind, since = "crashed", shard.responsive_at
        await shard.close()
        running = list(shard.in_flight.values())
        if not running:
            return None  # nobody's request was running: not a tenant's doing
        corroborated = "fatal" in shard.output_tail().lower()
    else:
        return None
    return attribute(
        kind,
        shard.name,
        running=running,
        recent=[r for r in shard.recent_starts if r.at >= since - probe_interval],
        reported=health_versions(shard.last_health) if not shard.marks_seen else [],
        corroborated=corroborated,
        detail=detail,
    )


def busy_cores(shard: Shard) -> float:
    """CPU the shard used since it last answered a probe, in cores (1.0: one core all along)."""
    elapsed = time.monotonic() - shard.responsive_at
    return (shard.cpu_seconds() - shard.responsive_cpu) / elapsed if elapsed > 0 else 0.0


async def exits_within(shard: Shard, seconds: float) -> bool:
    # Not wait_for: Python 3.11's returns the exit when the task is cancelled in the loop turn the
    # shard exits, and the supervising loop went on watching (Supervisor.stop waited forever).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await shard.wait()
    return not shard.alive
