"""The reaper: deletes expired temporary accounts completely, leaving a tombstone and audit entries.

Idempotent and safe to run on several replicas at once: each account is taken with a row lock
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers), and an account that another
replica already deleted is simply gone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import Connection, delete, insert, select

from mayfly.services import audit
from mayfly.services.cleanup import delete_script_rows
from mayfly.services.context import ServiceContext
from mayfly.storage.tables import (
    accounts,
    api_tokens,
    asset_files,
    asset_upload_sessions,
    audit_events,
    device_authorizations,
    kv_entries,
    kv_namespaces,
    memberships,
    moved_hosts,
    scripts,
    sessions,
    tombstones,
    used_challenges,
)

log = logging.getLogger("mayfly.reaper")


class Reaper:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def expired_account_ids(self, limit: int = 100) -> list[str]:
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            return list(
                conn.execute(
                    select(accounts.c.id)
                    .where(accounts.c.kind == "temporary", accounts.c.expires_at <= now)
                    .limit(limit)
                ).scalars()
            )

    def reap_account(self, account_id: str) -> list[str] | None:
        """Delete one expired account; returns the hosts whose routes changed (None if not reaped)."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            query = select(accounts).where(
                accounts.c.id == account_id,
                accounts.c.kind == "temporary",
                accounts.c.expires_at <= now,
            )
            if not self.ctx.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            account = conn.execute(query).first()
            if account is None:
                return None  # claimed meanwhile, or another replica took it
            script_names = list(
                conn.execute(
                    select(scripts.c.name).where(scripts.c.account_id == account_id)
                ).scalars()
            )
            delete_account_content(conn, self.ctx, account_id)
            conn.execute(delete(api_tokens).where(api_tokens.c.account_id == account_id))
            conn.execute(delete(memberships).where(memberships.c.account_id == account_id))
            conn.execute(delete(accounts).where(accounts.c.id == account_id))
            conn.execute(
                insert(tombstones).values(
                    account_id=account_id,
                    name=account.name,
                    created_at=account.created_at,
                    expired_at=account.expires_at,
                    deleted_at=now,
                    keep_until=now + timedelta(seconds=self.ctx.settings.tombstone_cooldown),
                    claim_token_hash=account.claim_token_hash,
                )
            )
            audit.record(
                conn,
                account_id,
                "account.deleted",
                "reaper",
                now,
                reason="expired",
                scripts=len(script_names),
            )
        log.info("reaped expired temporary account %s (%s)", account.name, account_id)
        return [self.ctx.worker_host(s, account.name) for s in script_names]

    def purge_old_records(self) -> None:
        """Tombstones past their cooldown, audit entries past retention, used challenges."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            conn.execute(delete(tombstones).where(tombstones.c.keep_until <= now))
            conn.execute(
                delete(audit_events).where(
                    audit_events.c.created_at
                    <= now - timedelta(seconds=self.ctx.settings.audit_retention)
                )
            )
            conn.execute(delete(used_challenges).where(used_challenges.c.expires_at <= now))
            conn.execute(delete(moved_hosts).where(moved_hosts.c.keep_until <= now))
            conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
            conn.execute(
                delete(device_authorizations).where(device_authorizations.c.expires_at <= now)
            )
            conn.execute(delete(kv_entries).where(kv_entries.c.expiration <= int(now.timestamp())))

    async def run_once(self) -> int:
        """One pass: reap every expired account. Returns how many were deleted."""
        count = 0
        while True:
            ids = await asyncio.to_thread(self.expired_account_ids)
            if not ids:
                break
            progressed = False
            for account_id in ids:
                hosts = await asyncio.to_thread(self.reap_account, account_id)
                if hosts is not None:
                    progressed = True
                    count += 1
                    if hosts:
                        await self.ctx.invalidator.invalidate(hosts)
            if not progressed:
                break
        await asyncio.to_thread(self.purge_old_records)
        return count

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("reaper pass failed; retrying at the next interval")
            await asyncio.sleep(self.ctx.settings.reaper_interval)


def delete_account_content(conn: Connection, ctx: ServiceContext, account_id: str) -> None:
    """Every content row and blob of an account: scripts, versions, modules, KV."""
    for script_id in (
        conn.execute(select(scripts.c.id).where(scripts.c.account_id == account_id)).scalars().all()
    ):
        delete_script_rows(conn, script_id)
    conn.execute(delete(kv_entries).where(kv_entries.c.account_id == account_id))
    conn.execute(delete(kv_namespaces).where(kv_namespaces.c.account_id == account_id))
    conn.execute(delete(asset_files).where(asset_files.c.account_id == account_id))
    conn.execute(
        delete(asset_upload_sessions).where(asset_upload_sessions.c.account_id == account_id)
    )
    ctx.blobs.delete_account(conn, account_id)
