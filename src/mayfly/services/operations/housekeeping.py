"""What nobody else would ever clean: tails nobody reads, expired asset upload sessions and the
files only they kept, address taints that ended, blob files no row names, D1 files of no
database (and import uploads never run), idle keys of the in-memory limiters and D1's cached
targets of deleted databases.

Runs next to the reaper in `mayfly serve`: tails every few seconds (an expired or deleted
account's tail must stop soon), the rest every reaper interval.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select

from mayfly.services.container import Services
from mayfly.services.core.ratelimit import SlidingWindowLimiter
from mayfly.services.resources.assets import TOKEN_LIFETIME
from mayfly.services.workers.cleanup import collect_garbage_blobs
from mayfly.storage.tables import asset_upload_sessions

log = logging.getLogger("mayfly.housekeeping")

TAIL_SWEEP_SECONDS = 5.0
# A blob file without a row is removed once this old: far longer than any write transaction.
ORPHAN_BLOB_AGE_SECONDS = 3600.0
# The blob sweep stats every file: it runs this often, not every pass.
BLOB_SWEEP_SECONDS = ORPHAN_BLOB_AGE_SECONDS / 4


class Housekeeper:
    def __init__(self, services: Services):
        self.services = services
        self.ctx = services.ctx
        self._last_blob_sweep = -float("inf")

    @property
    def limiters(self) -> list[SlidingWindowLimiter]:
        return list(self.named_limiters.values())

    @property
    def named_limiters(self) -> dict[str, SlidingWindowLimiter]:
        """Every per-key limiter, under a name replicas agree on (their shared rows' key)."""
        svc = self.services
        users, device = svc.users, svc.device_auth
        adaptive = svc.provisioning.adaptive
        return {
            "signups": users.signups,
            "signups_total": users.signups_total,
            "logins": users.logins,
            "logins_total": users.logins_total,
            "login_failures_pair": users.by_pair,
            "login_failures_client": users.by_client,
            "device_lookups": device.lookups,
            "device_codes": device.codes,
            "device_codes_total": device.codes_total,
            "challenges": svc.provisioning.challenge_limiter,
            "temporary_accounts": svc.provisioning.account_limiter,
            "pow_platform_recent": adaptive.platform_recent,
            "pow_address_recent": adaptive.address_recent,
        }

    async def sweep_tails(self) -> int:
        return await self.services.tails.sweep()

    def prune_limiters(self) -> int:
        now = self.ctx.clock.now().timestamp()
        return sum(limiter.prune(now) for limiter in self.limiters)

    def purge_upload_sessions(self) -> int:
        """Delete asset upload sessions past their tokens' lifetime, then the asset files and
        blobs that only those sessions wanted. Returns how many accounts were cleaned."""
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            account_ids = list(
                conn.execute(
                    select(asset_upload_sessions.c.account_id)
                    .where(asset_upload_sessions.c.expires_at <= now - TOKEN_LIFETIME)
                    .distinct()
                ).scalars()
            )
        if not account_ids:
            return 0
        with self.ctx.db.begin() as conn:
            self.services.assets.purge_sessions(conn, now)
            for account_id in account_ids:
                collect_garbage_blobs(conn, self.ctx, account_id)
        return len(account_ids)

    def sweep_blobs(self) -> int:
        return self.ctx.blobs.sweep_orphans(self.ctx.db.read, ORPHAN_BLOB_AGE_SECONDS)

    async def run_once(self) -> None:
        """One full pass: tails, limiters, upload sessions, and orphan blobs when they are due."""
        done = {
            "tails closed": await self.sweep_tails(),
            "limiter keys forgotten": self.prune_limiters(),
            "accounts' expired upload sessions purged": await asyncio.to_thread(
                self.purge_upload_sessions
            ),
            "ended address taints purged": await asyncio.to_thread(
                self.services.provisioning.taints.purge
            ),
        }
        await asyncio.to_thread(self.services.d1.forget_targets)  # routine: not logged
        if time.monotonic() - self._last_blob_sweep >= BLOB_SWEEP_SECONDS:
            self._last_blob_sweep = time.monotonic()
            done["orphan blob files removed"] = await asyncio.to_thread(self.sweep_blobs)
            done["orphan D1 files removed"] = await asyncio.to_thread(
                self.services.d1.sweep_orphans, ORPHAN_BLOB_AGE_SECONDS
            )
        for what, count in done.items():
            if count:
                log.info("housekeeping: %d %s", count, what)

    async def run_forever(self) -> None:
        interval = self.ctx.settings.reaper_interval
        last_full = -float("inf")
        while True:
            try:
                if time.monotonic() - last_full >= interval:
                    last_full = time.monotonic()
                    await self.run_once()
                else:
                    await self.sweep_tails()
            except Exception:
                log.exception("housekeeping pass failed; retrying at the next interval")
            await asyncio.sleep(min(TAIL_SWEEP_SECONDS, interval))
