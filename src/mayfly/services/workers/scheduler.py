"""The scheduler: every `cron_tick` seconds it claims the cron triggers that are due
(ScheduleService.claim_due: each run once across replicas) and has the data plane run each
Worker's scheduled() handler. Runs next to the reaper in `mayfly serve`, on nodes that run a data
plane. A run does not hold up the next tick; at most MAX_CONCURRENT run at once per node.
"""

from __future__ import annotations

import asyncio
import logging

from mayfly.services.workers.schedules import DueRun, ScheduledInvoker, ScheduleService

log = logging.getLogger("mayfly.scheduler")

MAX_CONCURRENT = 32


class Scheduler:
    def __init__(self, schedules: ScheduleService, invoker: ScheduledInvoker):
        self.schedules = schedules
        self.invoker = invoker
        self._running: set[asyncio.Task[str]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def run_once(self) -> list[asyncio.Task[str]]:
        """Claims the due runs and starts them; returns their tasks (each ends with its outcome)."""
        if len(self._running) >= MAX_CONCURRENT:
            return []  # busy: what is due stays due for the next tick
        runs = await asyncio.to_thread(
            self.schedules.claim_due, MAX_CONCURRENT - len(self._running)
        )
        tasks = []
        for run in runs:
            task = asyncio.create_task(self._fire(run))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            tasks.append(task)
        return tasks

    async def _fire(self, run: DueRun) -> str:
        host = self.schedules.host(run)
        async with self._slots:
            try:
                outcome = await self.invoker.scheduled(
                    host, run.cron, round(run.scheduled_time.timestamp() * 1000)
                )
            except Exception:
                log.exception("cron trigger %r of %s failed to run", run.cron, host)
                return "unavailable"
        log.debug("cron trigger %r of %s: %s", run.cron, host, outcome)
        return outcome

    async def run_forever(self) -> None:
        tick = self.schedules.ctx.settings.cron_tick
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("the scheduler's pass failed")
            await asyncio.sleep(tick)
