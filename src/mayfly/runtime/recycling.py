"""How the Supervisor replaces a shard without dropping a request: a warmed replacement, a drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from mayfly.runtime.admin import AdminError
from mayfly.runtime.attribution import exits_within
from mayfly.runtime.shard import HotSet, Shard
from mayfly.runtime.shard_limits import EventKind, Limits

log = logging.getLogger("mayfly.runtime")


class Recycling:
    """The Supervisor's recycling: a base of `Supervisor`, which provides the rest it uses."""

    limits: Limits
    slots: list[Shard | None]
    _doomed: dict[Shard, EventKind]

    def __init__(self) -> None:
        # One replacement at a time (it bounds the memory a recycle adds), what was asked for each
        # slot, the old shards draining and the tasks that wait for them.
        self._recycling = asyncio.Lock()
        self._recycle_wanted: dict[int, tuple[str, list[asyncio.Future[None]]]] = {}
        self._retiring: set[Shard] = set()
        self._drains: set[asyncio.Task[None]] = set()

    if TYPE_CHECKING:

        async def _restart(self, slot: int, failures: int) -> Shard: ...
        async def _release(self, shard: Shard) -> None: ...
        async def _watch(
            self, shard: Shard, *, recycling: bool = False
        ) -> tuple[EventKind, str]: ...
        async def _put_down(self, shard: Shard, reason: EventKind, detail: str) -> None: ...
        def _record(self, shard: Shard, kind: EventKind, detail: str = "") -> None: ...

    async def recycle(self, slot: int, reason: str) -> None:
        """Replaces the slot's shard without dropping a request; returns once the replacement
        serves (the old shard may still be draining).

        The replacement starts on the shared socket and is given the old shard's hot set (the
        Workers it served within `hot_window`) while the old one keeps serving; then the old one is
        sent SIGTERM: workerd stops accepting, answers its requests in flight (each with
        `Connection: close`), closes its idle keep-alive connections and exits. It is killed only
        if it has not drained after `drain_grace`, or if it grows over the memory ceiling."""
        if self.slots[slot] is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._recycle_wanted.setdefault(slot, (reason, []))[1]
        waiting.append(done)
        await done

    async def _recycle(self, slot: int, old: Shard, why: str) -> None:
        """See `recycle`. While the replacement starts and warms up, `old` is still watched: if it
        freezes, dies or passes the ceiling meanwhile, it goes the way any such shard goes."""
        log.info("%s is %s; recycling it", old.name, why)
        self._record(old, "recycle", why)
        guard = asyncio.ensure_future(self._watch(old, recycling=True))
        new: Shard | None = None
        try:
            async with self._recycling:
                if not guard.done():
                    hot = await self._hot_set(old)
                    new = await self._restart(slot, 0)
                    if hot.hosts and not guard.done():
                        await self._preload(new, hot, guard)
        except BaseException:
            guard.cancel()
            if new is not None:
                await self._release(new)
            raise
        if guard.done():
            guard.cancel()
            reason, detail = guard.result() if not guard.cancelled() else ("exited", "")
            reason = self._doomed.get(old, reason)
            log.warning("%s is %s while being recycled; killing it", old.name, detail)
            await self._put_down(old, reason, detail)
            if new is None:
                new = await self._restart(slot, 0)
            self.slots[slot] = new
        else:
            guard.cancel()
            self.slots[slot] = new
            drain = asyncio.create_task(self._drain(old), name=f"mayfly-drain-{old.pid}")
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        assert new is not None
        log.info("%s serving in place of pid %d", new.name, old.pid)
        _, waiting = self._recycle_wanted.pop(slot, ("", []))
        for future in waiting:
            if not future.done():
                future.set_result(None)

    async def _preload(self, shard: Shard, hot: HotSet, guard: asyncio.Future[Any]) -> None:
        """Until the hot set is loaded, the time is up, or the guard finds the old shard must go."""
        preload = asyncio.ensure_future(shard.preload(hot, timeout=self.limits.preload_timeout))
        try:
            await asyncio.wait([preload, guard], return_when=asyncio.FIRST_COMPLETED)
        finally:
            preload.cancel()
            with contextlib.suppress(asyncio.CancelledError, AdminError):
                await preload

    async def _hot_set(self, shard: Shard) -> HotSet:
        try:
            return await shard.hot_set(
                self.limits.hot_window, self.limits.hot_limit, timeout=self.limits.probe_timeout
            )
        except AdminError as exc:
            log.warning("%s did not tell its hot Workers (%s)", shard.name, exc)
            return HotSet([], [])

    async def _drain(self, shard: Shard) -> None:
        """SIGTERM, then wait for the shard to finish its requests in flight: killed only after
        `drain_grace` (it is frozen) or over the memory ceiling."""
        self._retiring.add(shard)
        shard.terminate()
        limits = self.limits
        deadline = time.monotonic() + limits.drain_grace
        detail = ""
        while not await exits_within(shard, limits.probe_interval):
            if shard.rss_bytes() > limits.ceiling_bytes:
                detail = "over its memory ceiling while draining"
                break
            if time.monotonic() > deadline:
                detail = f"not drained within {limits.drain_grace} s"
                break
        if detail:
            log.warning("%s is %s; killing it", shard.name, detail)
        await self._release(shard)
        self._record(shard, "drained", detail or f"status {shard.returncode}")
