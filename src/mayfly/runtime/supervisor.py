"""Keeps N shards serving on one socket: probes them, restarts them, replaces the stuck and the fat.

workerd enforces no CPU or memory limit per tenant (workerd-facts §5): a tenant's infinite loop
freezes its whole shard, and the probe that then goes unanswered is the only CPU limit there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Literal

from mayfly.runtime.admin import AdminError
from mayfly.runtime.shard import Shard, ShardLauncher, ShardStartError

log = logging.getLogger("mayfly.runtime")

EventKind = Literal["started", "start-failed", "exited", "unresponsive", "memory", "no-ack"]

# A shard that exits sooner than this after becoming ready counts as crash-looping.
_STABLE_AFTER = 10.0


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    probe_timeout: float = 1.0
    probe_interval: float = 0.25
    startup_timeout: float = 10.0
    invalidate_timeout: float = 2.0
    drain_grace: float = 10.0
    max_backoff: float = 5.0


@dataclass(frozen=True)
class ShardEvent:
    slot: int
    kind: EventKind
    pid: int
    at: float  # time.monotonic()
    detail: str = ""


class Supervisor:
    def __init__(self, launcher: ShardLauncher, count: int, limits: Limits):
        if count < 1:
            raise ValueError("a data plane needs at least one shard")
        self.launcher = launcher
        self.count = count
        self.limits = limits
        self.slots: list[Shard | None] = [None] * count
        self.events: list[ShardEvent] = []
        self._spawned: set[Shard] = set()  # every process started and not yet released
        self._doomed: dict[Shard, EventKind] = {}  # killed elsewhere, and why
        self._generations = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

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

    async def invalidate(self, hosts: list[str]) -> None:
        """Returns when every live shard dropped these routes; a shard that does not say so in
        time is killed (its replacement starts with an empty cache)."""
        targets = [s for s in self._spawned if s.alive]
        await asyncio.gather(*(self._invalidate_one(s, hosts) for s in targets))

    async def stop(self) -> None:
        """Drain: SIGTERM, then SIGKILL whatever is left after the grace period."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
        return shard

    async def _release(self, shard: Shard) -> None:
        shard.kill()
        await shard.close()
        self._spawned.discard(shard)
        self._doomed.pop(shard, None)

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
        if reason == "exited":
            log.warning("%s exited with status %s; restarting it", shard.name, shard.returncode)
        elif reason in ("unresponsive", "memory"):
            log.warning("%s is %s; killing and replacing it", shard.name, detail)
        await self._release(shard)
        self._record(shard, reason, detail)
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

    async def _watch(self, shard: Shard) -> tuple[EventKind, str]:
        limits = self.limits
        while True:
            if await _exits_within(shard, limits.probe_interval):
                return "exited", f"status {shard.returncode}"
            try:
                await shard.probe(limits.probe_timeout)
            except AdminError as exc:
                # A shard that just died refuses the probe before its exit is noticed.
                if not exc.timed_out and await _exits_within(shard, 0.5):
                    return "exited", f"status {shard.returncode}"
                return "unresponsive", (
                    f"not answering its health probe ({exc}); a tenant may be in an endless loop"
                )
            rss = shard.rss_bytes()
            if rss > limits.memory_bytes:
                mib = 1024 * 1024
                return "memory", (
                    f"over its memory budget ({rss // mib} MiB > {limits.memory_bytes // mib} MiB)"
                )

    async def _invalidate_one(self, shard: Shard, hosts: list[str]) -> None:
        timeout = self.limits.invalidate_timeout
        try:
            async with asyncio.timeout(timeout):
                # A shard still starting may already serve: it must acknowledge too.
                if await shard.until_ready():
                    await shard.invalidate(hosts, timeout=timeout)
        except (TimeoutError, AdminError) as exc:
            if not shard.alive or self._stopping:
                return
            log.warning(
                "%s did not acknowledge an invalidation (%s); replacing it", shard.name, exc
            )
            self._doomed[shard] = "no-ack"
            shard.kill()
            await _exits_within(shard, 1.0)

    def _record(self, shard: Shard, kind: EventKind, detail: str = "") -> None:
        self.events.append(ShardEvent(shard.slot, kind, shard.pid, time.monotonic(), detail))


async def _exits_within(shard: Shard, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(shard.wait(), seconds)
    return not shard.alive
