"""The reaper: deletes expired temporary accounts completely, leaving a tombstone and audit entries.

Accounts go in batches: one short write transaction deletes a batch's rows from every table with
one set-based statement per table on an indexed column (the batch's ids as a single parameter,
`storage.id_sets`), writes the tombstones with one INSERT … SELECT and the audit entries with one
executemany; then the batch's files are removed (one job per batch, by a background thread) and its
hosts invalidated, outside the transaction. Nothing is read that is then deleted, except the ids,
names and Worker names the invalidation needs. Idempotent and safe to run on several replicas at
once: a batch is taken with row locks (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas take
disjoint batches; SQLite serialises writers), and an account another replica already deleted is
simply gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
)

from mayfly.model import as_utc
from mayfly.services.context import ServiceContext
from mayfly.services.resources.d1 import delete_database_files
from mayfly.services.workers.cleanup import delete_scripts_of_accounts
from mayfly.storage.id_sets import one_of
from mayfly.storage.resource_tables import (
    d1_databases,
    r2_buckets,
    r2_objects,
    r2_parts,
    r2_uploads,
)
from mayfly.storage.tables import (
    account_quarantines,
    accounts,
    api_tokens,
    asset_files,
    asset_upload_sessions,
    audit_events,
    blobs,
    device_authorizations,
    incidents,
    kv_entries,
    kv_namespaces,
    kv_usage,
    memberships,
    moved_hosts,
    quarantines,
    scripts,
    sessions,
    tombstones,
    used_challenges,
)

log = logging.getLogger("mayfly.reaper")

REAP_BATCH = 100  # accounts in the first write transaction of a pass
# Then the batch doubles or halves (within these bounds) to keep each transaction near the target
# (wall time: what other writers wait): long enough to amortise its fixed costs (a score of
# statements, the commit and the WAL pages it writes), short enough that other writers barely wait
# for it. The floor is not lower because fixed costs then dominate (measured on a loaded machine:
# 1.7 ms of CPU per account in batches of 10, 0.7 ms in batches of 50, 0.3 ms in batches of 250),
# and the reaper fell furthest behind exactly when the machine was busiest. Sizing on CPU time
# instead was tried: batches grew to seconds of wall time on a loaded machine (other tenants' p99
# 1.7 s).
REAP_BATCH_MIN, REAP_BATCH_MAX = 50, 1000
REAP_TARGET_SECONDS = 0.2
PURGE_BATCH = 1000  # rows per write transaction when purging old records


class Reaper:
    def __init__(self, ctx: ServiceContext, batch_size: int = REAP_BATCH, adaptive: bool = True):
        self.ctx = ctx
        self.batch_size = batch_size
        self.adaptive = adaptive
        # Removing a directory tree costs milliseconds per directory (file-system latency, not
        # CPU): a few threads do it while the next batches are deleted from the database.
        self._file_deleter = ThreadPoolExecutor(max_workers=4, thread_name_prefix="reaper-files")
        self._pending_files: list[Future[None]] = []

    def expired_account_ids(self, limit: int = REAP_BATCH) -> list[str]:
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
        hosts, count, _ = self._reap([account_id], 1)
        self.delete_files()
        return hosts if count else None

    def reap_batch(self) -> tuple[list[str], int]:
        """Delete up to `batch_size` expired accounts; returns (hosts whose routes changed, count)."""
        size = self.batch_size
        hosts, count, seconds = self._reap(None, size)
        if self.adaptive and count == size:
            if seconds < REAP_TARGET_SECONDS / 2:
                self.batch_size = min(REAP_BATCH_MAX, size * 2)
            elif seconds > REAP_TARGET_SECONDS * 2:
                self.batch_size = max(REAP_BATCH_MIN, size // 2)
        return hosts, count

    def _reap(self, only: list[str] | None, limit: int) -> tuple[list[str], int, float]:
        """(hosts whose routes changed, accounts deleted, seconds the write transaction took)."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            started = time.monotonic()
            query = select(accounts.c.id, accounts.c.name).where(
                accounts.c.kind == "temporary", accounts.c.expires_at <= now
            )
            if only is not None:
                query = query.where(accounts.c.id.in_(only))
            # Oldest first, in the order of the (kind, expires_at) index: the scan stops at the
            # limit (a tie-break on id sorted every expired account again at each batch).
            query = query.order_by(accounts.c.expires_at).limit(limit)
            if not self.ctx.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            taken = conn.execute(query).all()
            if not taken:
                return [], 0, 0.0  # claimed meanwhile, or another replica took them
            ids = [a.id for a in taken]
            names = {a.id: a.name for a in taken}
            script_rows = conn.execute(
                select(scripts.c.account_id, scripts.c.name).where(
                    one_of(conn, scripts.c.account_id, ids)
                )
            ).all()
            _write_tombstones(conn, ids, now, self.ctx.settings.tombstone_cooldown)
            conn.execute(insert(audit_events), _deletion_audit(ids, script_rows, now))
            databases = delete_accounts_content(conn, ids)
            for table in (api_tokens, memberships):
                conn.execute(delete(table).where(one_of(conn, table.c.account_id, ids)))
            conn.execute(delete(accounts).where(one_of(conn, accounts.c.id, ids)))
            seconds = time.monotonic() - started
        # After the commit, at the end of the pass: files of rows that are gone (a crash before
        # leaves files of no account, which the blob sweep collects; never rows without files).
        self._pending_files.append(self._file_deleter.submit(self._delete_batch_files, ids))
        self._pending_files.append(
            self._file_deleter.submit(delete_database_files, self.ctx.settings.data_dir, databases)
        )
        log.info("reaped %d expired temporary accounts", len(ids))
        for account in taken:
            log.debug("reaped expired temporary account %s (%s)", account.name, account.id)
        hosts = [self.ctx.worker_host(s.name, names[s.account_id]) for s in script_rows]
        return hosts, len(taken), seconds

    def _delete_batch_files(self, account_ids: list[str]) -> None:
        for account_id in account_ids:
            self.ctx.blobs.delete_account_files(account_id)

    def delete_files(self) -> None:
        """Wait until the blob files of the accounts reaped so far are gone."""
        pending, self._pending_files = self._pending_files, []
        for future in pending:
            future.result()

    def purge_old_records(self) -> None:
        """Tombstones past their cooldown, audit entries past retention, used challenges, …; in
        batches, so that a large backlog never holds the write lock for long."""
        now = self.ctx.clock.now()
        retention = now - timedelta(seconds=self.ctx.settings.audit_retention)
        purges: list[tuple[Table, ColumnElement[bool]]] = [
            (tombstones, tombstones.c.keep_until <= now),
            (audit_events, audit_events.c.created_at <= retention),
            (used_challenges, used_challenges.c.expires_at <= now),
            (moved_hosts, moved_hosts.c.keep_until <= now),
            (sessions, sessions.c.expires_at <= now),
            (device_authorizations, device_authorizations.c.expires_at <= now),
            (kv_entries, kv_entries.c.expiration <= int(now.timestamp())),
        ]
        for table, condition in purges:
            while self._purge_batch(table, condition) == PURGE_BATCH:
                pass

    def _purge_batch(self, table: Table, condition: ColumnElement[bool]) -> int:
        key = list(table.primary_key.columns)
        with self.ctx.db.begin() as conn:
            found = conn.execute(select(*key).where(condition).limit(PURGE_BATCH)).all()
            if found:
                target = key[0] if len(key) == 1 else tuple_(*key)
                values = [r[0] for r in found] if len(key) == 1 else [tuple(r) for r in found]
                conn.execute(delete(table).where(target.in_(values)))
        return len(found)

    async def run_once(self) -> int:
        """One pass: reap every expired account. Returns how many were deleted."""
        with self.ctx.metrics.reaper_passes.time():
            return await self._pass()

    def lag_seconds(self) -> float:
        """Age of the oldest expired temporary account still there (0: none)."""
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            oldest = conn.execute(
                select(func.min(accounts.c.expires_at)).where(
                    accounts.c.kind == "temporary", accounts.c.expires_at <= now
                )
            ).scalar_one_or_none()
        return 0.0 if oldest is None else max(0.0, (now - as_utc(oldest)).total_seconds())

    async def _pass(self) -> int:
        count = 0
        while True:
            hosts, reaped = await asyncio.to_thread(self.reap_batch)
            if not reaped:
                break
            count += reaped
            self.ctx.metrics.reaped.inc(reaped)
            if hosts:
                await self.ctx.invalidator.invalidate(hosts)
        await asyncio.to_thread(self.delete_files)
        await asyncio.to_thread(self.purge_old_records)
        return count

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("reaper pass failed; retrying at the next interval")
            await asyncio.sleep(self.ctx.settings.reaper_interval)


def _write_tombstones(conn: Connection, ids: list[str], now: datetime, cooldown: float) -> None:
    """One INSERT … SELECT from the accounts about to go (their rows are never read here)."""
    keep_until = now + timedelta(seconds=cooldown)
    conn.execute(
        insert(tombstones).from_select(
            [
                "account_id",
                "name",
                "created_at",
                "expired_at",
                "deleted_at",
                "keep_until",
                "claim_token_hash",
            ],
            select(
                accounts.c.id,
                accounts.c.name,
                accounts.c.created_at,
                accounts.c.expires_at,
                literal(now, tombstones.c.deleted_at.type),
                literal(keep_until, tombstones.c.keep_until.type),
                accounts.c.claim_token_hash,
            ).where(one_of(conn, accounts.c.id, ids)),
        )
    )


def _deletion_audit(
    ids: list[str], script_rows: Sequence[Any], now: datetime
) -> list[dict[str, Any]]:
    per_account: dict[str, int] = {}
    for row in script_rows:
        per_account[row.account_id] = per_account.get(row.account_id, 0) + 1
    return [
        {
            "account_id": account_id,
            "event": "account.deleted",
            "actor": "reaper",
            "created_at": now,
            "details": {"reason": "expired", "scripts": per_account.get(account_id, 0)},
        }
        for account_id in ids
    ]


def delete_accounts_content(conn: Connection, account_ids: list[str]) -> list[str]:
    """Every content row of these accounts (scripts, versions, modules, deployments, KV, assets,
    R2 buckets, objects and uploads, D1 databases, blob rows, incidents and quarantines of Workers and of the account); the
    files are the caller's, after its commit (BlobStore.delete_accounts_files, and
    d1.delete_database_files for the D1 databases whose ids this returns)."""
    databases = list(
        conn.execute(
            select(d1_databases.c.id).where(one_of(conn, d1_databases.c.account_id, account_ids))
        ).scalars()
    )
    delete_scripts_of_accounts(conn, account_ids)
    for table in (
        kv_usage,  # first: the kv_entries triggers then find no usage row to update per entry
        kv_entries,
        kv_namespaces,
        asset_files,
        asset_upload_sessions,
        r2_parts,
        r2_uploads,
        r2_objects,
        r2_buckets,
        d1_databases,
        blobs,
        incidents,
        quarantines,
        account_quarantines,
    ):
        conn.execute(delete(table).where(one_of(conn, table.c.account_id, account_ids)))
    return databases
