"""Keeps N shards serving on one socket: probes them, restarts them, replaces the stuck and the fat.

workerd enforces no CPU or memory limit per tenant (workerd-facts §5): a tenant's infinite loop
freezes its whole shard, and the probe that then goes unanswered is the only CPU limit there is.

Every kill names its cause: an `Incident` (incidents.py) of whom attribution.py blames.
Replacing a shard without dropping a request (recycling, draining) is recycling.py's part.

The Supervisor is a plain asyncio object; the DataPlane runs it on an event loop of its own, in a
thread of its own, so that the API's load cannot delay its probes (dataplane.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mayfly.runtime.admin import AdminError
from mayfly.runtime.attribution import (
    SPINNING,
    blame,
    busy_cores,
    exits_within,
    usual_suspects_first,
)
from mayfly.runtime.incidents import Incident, IncidentSink
from mayfly.runtime.recycling import Recycling
from mayfly.runtime.shard import RoutePush, Shard, ShardLauncher, ShardStartError
from mayfly.runtime.shard_limits import EventKind, Limits, ShardEvent, Usage

log = logging.getLogger("mayfly.runtime")


# A shard that exits sooner than this after becoming ready counts as crash-looping.
_STABLE_AFTER = 10.0
# The events and incidents kept for inspection: the newest ones (a hostile tenant makes many).
_KEPT = 1000
# Incidents looked back on to order an uncertain incident's suspects.
_HISTORY = 20


class Supervisor(Recycling):
    def __init__(
        self,
        launcher: ShardLauncher,
        count: int,
        limits: Limits,
        on_incident: IncidentSink | None = None,
    ):
        if count < 1:
            raise ValueError("a data plane needs at least one shard")
        super().__init__()  # Recycling's state
        self.launcher = launcher
        self.count = count
        self.limits = limits
        self.on_incident = on_incident
        # Told every event's kind (metrics); called on the supervisor's thread, must not block.
        self.on_event: Callable[[str], None] | None = None
        # The live routes, for a shard that just started (awaited before it takes its slot, at
        # most `invalidate_timeout`); None: it asks for each host on its first request.
        self.snapshot: Callable[[], Awaitable[RoutePush | None]] | None = None
        self.slots: list[Shard | None] = [None] * count
        # The newest events and incidents (at most 2 × _KEPT; trimmed to _KEPT).
        self.events: list[ShardEvent] = []
        self.incidents: list[Incident] = []
        self._spawned: set[Shard] = set()  # every process started and not yet released
        self._doomed: dict[Shard, EventKind] = {}  # killed elsewhere, and why
        self._doomed_detail: dict[Shard, tuple[str, float]] = {}  # and the CPU it burnt
        self._generations = itertools.count()
        self._scheduled_turns = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.retired_loads = 0  # Workers loaded by shards no longer running

    def live_shards(self) -> list[Shard]:
        return [s for s in self.slots if s is not None and s.alive and s.ready.is_set()]

    async def start(self) -> None:
        """Returns when every shard is ready; raises ShardStartError (and cleans up) otherwise."""
        results = await asyncio.gather(
            *(self._start_slot(slot) for slot in range(self.count)), return_exceptions=True
        )
        for slot, result in enumerate(results):
            if isinstance(result, BaseException):
                await self.stop()
                raise ShardStartError(f"shard {slot} did not start: {result}") from result
        self.slots = [r for r in results if isinstance(r, Shard)]
        self._tasks = [
            asyncio.create_task(self._supervise(slot), name=f"mayfly-shard-{slot}")
            for slot in range(self.count)
        ]

    async def invalidate(self, hosts: list[str], push: RoutePush | None = None) -> None:
        """Returns when every live shard dropped these routes (and took the routes `push`
        carries); a shard that does not say so in time is killed (its replacement starts with a
        snapshot, or an empty cache)."""
        # A draining shard reads no new request (its in-flight ones already have their route).
        targets = [s for s in self._spawned if s.alive and s not in self._retiring]
        await asyncio.gather(*(self._invalidate_one(s, hosts, push) for s in targets))

    async def scheduled(
        self, host: str, cron: str, scheduled_time_ms: int, timeout: float
    ) -> dict[str, Any]:
        """Runs a cron trigger on one live shard, taken in turn; AdminError when none answers."""
        shards = [s for s in self.live_shards() if s not in self._retiring]
        if not shards:
            raise AdminError("no live shard to run a cron trigger")
        shard = shards[next(self._scheduled_turns) % len(shards)]
        return await shard.scheduled(host, cron, scheduled_time_ms, timeout=timeout)

    async def usage(self) -> Usage:
        return Usage(
            rss_bytes=sum(s.rss_bytes() for s in self._spawned if s.alive),
            isolate_loads=self.retired_loads + sum(_loaded(s) for s in self._spawned),
        )

    async def stop(self) -> None:
        """Drain: SIGTERM, then SIGKILL whatever is left after the grace period."""
        self._stopping = True
        tasks = [*self._tasks, *self._drains]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, asked in self._recycle_wanted.values():
            for future in asked:
                if not future.done():
                    future.cancel()
        shards = list(self._spawned)
        for shard in shards:
            shard.terminate()
        if shards:
            waits = [asyncio.ensure_future(s.wait()) for s in shards]
            _, still_running = await asyncio.wait(waits, timeout=self.limits.drain_grace)
            for waiting in still_running:
                waiting.cancel()
        for shard in shards:
            if shard.alive:
                log.warning(
                    "%s did not drain within %s s; killing it", shard.name, self.limits.drain_grace
                )
                shard.kill()
            await shard.close()
            self._spawned.discard(shard)

    async def _start_slot(self, slot: int) -> Shard:
        shard = await Shard.spawn(self.launcher, slot, next(self._generations))
        self._spawned.add(shard)
        try:
            await shard.wait_ready(self.limits.startup_timeout)
        except ShardStartError as exc:
            self._record(shard, "start-failed", str(exc))
            await self._release(shard)
            raise
        self._record(shard, "started")
        await self._push_snapshot(shard)
        return shard

    async def _push_snapshot(self, shard: Shard) -> None:
        """Gives a new shard every live route, so that it asks for none it was told about. Not
        needed for correctness: an invalidation that reaches it first wins (`RoutePush.seq`)."""
        if self.snapshot is None:
            return
        timeout = self.limits.invalidate_timeout
        try:
            async with asyncio.timeout(timeout):
                push = await self.snapshot()
                if push is not None:
                    await shard.invalidate(list(push.routes), timeout=timeout, push=push)
        except Exception as exc:  # TimeoutError, AdminError, the control plane's failure
            log.warning(
                "%s did not get the routes snapshot (%r); it asks for each", shard.name, exc
            )

    async def _release(self, shard: Shard) -> None:
        shard.kill()
        await shard.close()
        if shard in self._spawned:
            self.retired_loads += _loaded(shard)
        self._spawned.discard(shard)
        self._retiring.discard(shard)
        self._doomed.pop(shard, None)
        self._doomed_detail.pop(shard, None)

    async def _supervise(self, slot: int) -> None:
        failures = 0
        while True:
            try:
                failures = await self._replace_when_needed(slot, failures)
            except Exception:
                log.exception("supervising shard %d failed; retrying", slot)
                await asyncio.sleep(1.0)

    async def _replace_when_needed(self, slot: int, failures: int) -> int:
        """Waits until the slot's shard must go, then replaces it; returns the crash-loop count."""
        shard = self.slots[slot]
        if shard is None or shard not in self._spawned:
            self.slots[slot] = await self._restart(slot, failures)
            return failures
        reason, detail = await self._watch(shard)
        reason = self._doomed.get(shard, reason)
        if reason == "recycle":
            await self._recycle(slot, shard, detail)
            return 0
        if reason == "exited":
            log.warning("%s exited with status %s; restarting it", shard.name, shard.returncode)
        elif reason in ("unresponsive", "memory"):
            log.warning("%s is %s; killing and replacing it", shard.name, detail)
        await self._put_down(shard, reason, detail)
        lived = time.monotonic() - (shard.ready_at or shard.started_at)
        failures = failures + 1 if reason == "exited" and lived < _STABLE_AFTER else 0
        self.slots[slot] = None
        replacement = await self._restart(slot, failures)
        self.slots[slot] = replacement
        log.info("%s serving in place of pid %d", replacement.name, shard.pid)
        return failures

    async def _restart(self, slot: int, failures: int) -> Shard:
        while True:
            if failures > 1:
                await asyncio.sleep(min(self.limits.max_backoff, 0.1 * 2 ** (failures - 2)))
            try:
                return await self._start_slot(slot)
            except (ShardStartError, OSError) as exc:
                failures += 1
                log.error("shard %d failed to start: %s", slot, exc)

    async def _watch(self, shard: Shard, *, recycling: bool = False) -> tuple[EventKind, str]:
        """Returns why the shard must go. While it is being recycled, only a reason to kill it."""
        limits = self.limits
        while True:
            if await exits_within(shard, limits.probe_interval):
                return "exited", f"status {shard.returncode}"
            try:
                shard.last_health = await shard.probe(limits.probe_timeout)
            except AdminError as exc:
                # A shard that just died refuses the probe before its exit is noticed.
                if not exc.timed_out and await exits_within(shard, 0.5):
                    return "exited", f"status {shard.returncode}"
                if exc.timed_out and not self._spinning_or_stalled(shard):
                    continue
                return "unresponsive", (
                    f"not answering its health probe ({exc}; {busy_cores(shard):.2f} cores busy "
                    "meanwhile); a tenant may be in an endless loop"
                )
            rss = shard.rss_bytes()
            if rss <= limits.memory_bytes:
                shard.within_budget_at = time.monotonic()
            shard.responsive_at, shard.responsive_cpu = time.monotonic(), shard.cpu_seconds()
            mib = 1024 * 1024
            if rss > limits.ceiling_bytes:
                return "memory", (
                    f"over its memory ceiling ({rss // mib} MiB > {limits.ceiling_bytes // mib} MiB)"
                )
            if recycling:
                continue
            wanted = self._recycle_wanted.get(shard.slot)
            if wanted is not None:
                return "recycle", wanted[0]
            if rss > limits.memory_bytes:
                return "recycle", (
                    f"over its memory budget ({rss // mib} MiB > {limits.memory_bytes // mib} MiB)"
                )
            loaded = _loaded(shard)
            if limits.max_isolates and loaded >= limits.max_isolates:
                return "recycle", f"holding {loaded} Workers (budget {limits.max_isolates})"

    async def _invalidate_one(
        self, shard: Shard, hosts: list[str], push: RoutePush | None = None
    ) -> None:
        timeout = self.limits.invalidate_timeout
        asked = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(timeout):
                    # A shard still starting may already serve: it must acknowledge too.
                    if await shard.until_ready():
                        await shard.invalidate(hosts, timeout=timeout, push=push)
                return
            except (TimeoutError, AdminError) as exc:
                if not shard.alive or self._stopping:
                    return
                timed_out = not isinstance(exc, AdminError) or exc.timed_out
                if timed_out and not self._spinning_or_stalled(shard, asked):
                    continue  # starved, not frozen: ask again
                failure = exc
                break
        log.warning(
            "%s did not acknowledge an invalidation (%s); replacing it", shard.name, failure
        )
        self._doomed[shard] = "no-ack"
        cores = busy_cores(shard)
        self._doomed_detail[shard] = (
            f"did not acknowledge an invalidation ({failure}; {cores:.2f} cores busy meanwhile)",
            cores,
        )
        shard.kill()
        await exits_within(shard, 1.0)

    def _spinning_or_stalled(self, shard: Shard, silent_since: float | None = None) -> bool:
        """Whether a shard that did not answer in time must go: it burnt CPU all along (a tenant's
        loop), or has not answered since `silent_since` (its last answered probe) for
        `stall_timeout`."""
        silent = time.monotonic() - (shard.responsive_at if silent_since is None else silent_since)
        return busy_cores(shard) >= SPINNING or silent >= self.limits.stall_timeout

    def _record(self, shard: Shard, kind: EventKind, detail: str = "") -> None:
        self.events.append(ShardEvent(shard.slot, kind, shard.pid, time.monotonic(), detail))
        if len(self.events) > 2 * _KEPT:
            del self.events[:-_KEPT]
        if self.on_event is not None:
            try:
                self.on_event(kind)
            except Exception:
                log.exception("the shard event callback failed")

    async def _put_down(self, shard: Shard, reason: EventKind, detail: str) -> None:
        """A shard that had to go: whom its incident blames (before it is released), killed and
        closed, recorded, and the incident reported."""
        incident = await self._incident(shard, reason, detail)
        await self._release(shard)
        self._record(shard, reason, detail)
        if incident is not None:
            await self._report(incident)

    async def _incident(self, shard: Shard, reason: EventKind, detail: str) -> Incident | None:
        """Who was running when this shard had to go (called before it is killed)."""
        incident = await blame(
            shard,
            reason,
            detail,
            doomed=self._doomed_detail.get(shard),
            stopping=self._stopping,
            probe_interval=self.limits.probe_interval,
        )
        if incident is None:
            return None
        incident = usual_suspects_first(incident, self.incidents[-_HISTORY:])
        self.incidents.append(incident)
        if len(self.incidents) > 2 * _KEPT:
            del self.incidents[:-_KEPT]
        log.warning(
            "%s: %s incident, suspects %s (%s)",
            shard.name,
            incident.kind,
            ", ".join(incident.suspects) or "none",
            "certain" if incident.certain else "uncertain",
        )
        return incident

    async def _report(self, incident: Incident) -> None:
        if self.on_incident is None:
            return
        try:
            async with asyncio.timeout(self.limits.incident_timeout):
                await self.on_incident(incident)
        except TimeoutError:
            log.warning(
                "the control plane took over %s s to take in an incident; restarting "
                "the shard anyway",
                self.limits.incident_timeout,
            )
        except Exception:
            log.exception("reporting an incident failed")


def _loaded(shard: Shard) -> int:
    """Workers the shard had loaded at its last health answer."""
    loaded = (shard.last_health or {}).get("loaded")
    return loaded if isinstance(loaded, int) else 0
