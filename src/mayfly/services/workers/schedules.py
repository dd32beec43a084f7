"""Cron triggers: each Worker's schedules (PUT replaces them all, as Cloudflare's API does) and
the claiming of due runs.

A run is claimed by moving its row's `next_run_at` forward in an UPDATE that names the value it
read: of several control planes that read the same due row, one UPDATE changes it and the others
change nothing, so each run fires once per cluster (any database, no lock held while it runs).
A run missed while no control plane was up fires once, late; the ones before it are skipped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from mayfly import cron
from mayfly.errors import ScriptNotFound, ValidationError
from mayfly.model import Account, Principal, iso
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.storage.tables import accounts, scripts, worker_schedules

# Cloudflare allows a handful per Worker; so does Mayfly.
MAX_SCHEDULES_PER_WORKER = 5


class ScheduledInvoker(Protocol):
    """Runs a Worker's scheduled() handler (the data plane); returns its outcome ("ok", ...)."""

    async def scheduled(self, host: str, cron: str, scheduled_time_ms: int) -> str: ...


@dataclass(frozen=True)
class DueRun:
    script_id: str
    account_id: str
    script: str
    account_name: str
    cron: str
    scheduled_time: datetime


class ScheduleService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    # -- the API ---------------------------------------------------------------------------------

    def get(self, account: Account, name: str) -> list[dict[str, Any]]:
        with self.ctx.db.read() as conn:
            script_id = _require_script(conn, account.id, name)
            return _listing(conn, script_id)

    def validate(self, body: Any) -> list[cron.Cron]:
        """The body of PUT …/schedules (`[{"cron": "…"}, …]`) as parsed expressions; 10021 for
        anything Mayfly cannot run, before anything is stored."""
        if isinstance(body, dict) and "schedules" in body:
            body = body["schedules"]  # the shape GET answers, as some clients send it back
        if not isinstance(body, list):
            raise ValidationError('Send the schedules as a JSON array: [{"cron": "* * * * *"}].')
        parsed: dict[str, cron.Cron] = {}
        for item in body:
            expression = item.get("cron") if isinstance(item, dict) else item
            entry = cron.parse(expression)
            self._check_interval(entry)
            parsed.setdefault(entry.expression, entry)
        if len(parsed) > MAX_SCHEDULES_PER_WORKER:
            raise ValidationError(
                f"A Worker may have at most {MAX_SCHEDULES_PER_WORKER} cron triggers, "
                f"not {len(parsed)}."
            )
        return list(parsed.values())

    def _check_interval(self, entry: cron.Cron) -> None:
        minimum = self.ctx.settings.cron_min_interval
        if minimum <= 60:
            return
        shortest = entry.shortest_interval(self.ctx.clock.now())
        if shortest is not None and shortest < minimum:
            raise cron.CronError(
                f"The cron expression {entry.expression!r} runs every {shortest:g} s; this "
                f"platform runs a cron trigger at most every {minimum} s (cron_min_interval)."
            )

    async def put(
        self, principal: Principal | None, account: Account, name: str, body: Any
    ) -> list[dict[str, Any]]:
        entries = self.validate(body)
        return await asyncio.to_thread(self._put_sync, principal, account, name, entries)

    def _put_sync(
        self, principal: Principal | None, account: Account, name: str, entries: list[cron.Cron]
    ) -> list[dict[str, Any]]:
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            script_id = _require_script(conn, account.id, name)
            replace(conn, script_id, account.id, entries, now)
            actor = principal.email if principal and principal.email else account.name
            audit.record(
                conn,
                account.id,
                "script.schedules_updated",
                actor or account.name,
                now,
                script=name,
                crons=[e.expression for e in entries],
            )
            return _listing(conn, script_id)

    # -- the scheduler ---------------------------------------------------------------------------

    def claim_due(self, limit: int = 100) -> list[DueRun]:
        """The runs due now, each moved to its next time; only the caller fires them."""
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(
                    worker_schedules.c.script_id,
                    worker_schedules.c.cron,
                    worker_schedules.c.next_run_at,
                    worker_schedules.c.account_id,
                    scripts.c.name.label("script"),
                    accounts.c.name.label("account_name"),
                )
                .join(scripts, scripts.c.id == worker_schedules.c.script_id)
                .join(accounts, accounts.c.id == worker_schedules.c.account_id)
                .where(
                    worker_schedules.c.next_run_at <= now,
                    or_(accounts.c.expires_at.is_(None), accounts.c.expires_at > now),
                    accounts.c.suspended_at.is_(None),
                    scripts.c.current_version_id.is_not(None),
                )
                .order_by(worker_schedules.c.next_run_at)
                .limit(limit)
            ).all()
        claimed: list[DueRun] = []
        for row in rows:
            try:
                entry = cron.parse(row.cron)
            except cron.CronError:
                continue
            following = entry.next_after(now)
            with self.ctx.db.begin() as conn:
                if following is None:
                    conn.execute(
                        delete(worker_schedules).where(
                            worker_schedules.c.script_id == row.script_id,
                            worker_schedules.c.cron == row.cron,
                        )
                    )
                    continue
                won = conn.execute(
                    update(worker_schedules)
                    .where(
                        and_(
                            worker_schedules.c.script_id == row.script_id,
                            worker_schedules.c.cron == row.cron,
                            worker_schedules.c.next_run_at == row.next_run_at,
                        )
                    )
                    .values(next_run_at=following, last_run_at=now)
                ).rowcount
            if won == 1:
                claimed.append(
                    DueRun(
                        script_id=row.script_id,
                        account_id=row.account_id,
                        script=row.script,
                        account_name=row.account_name,
                        cron=row.cron,
                        scheduled_time=_aware(row.next_run_at),
                    )
                )
        return claimed

    def host(self, run: DueRun) -> str:
        return self.ctx.worker_host(run.script, run.account_name)


def replace(
    conn: Connection, script_id: str, account_id: str, entries: list[cron.Cron], now: datetime
) -> None:
    """The Worker's schedules become `entries`; one it already had keeps its next run."""
    kept = {
        r.cron
        for r in conn.execute(
            select(worker_schedules.c.cron).where(worker_schedules.c.script_id == script_id)
        )
    }
    wanted = {e.expression for e in entries}
    gone = kept - wanted
    if gone:
        conn.execute(
            delete(worker_schedules).where(
                worker_schedules.c.script_id == script_id, worker_schedules.c.cron.in_(gone)
            )
        )
    for entry in entries:
        if entry.expression in kept:
            conn.execute(
                update(worker_schedules)
                .where(
                    worker_schedules.c.script_id == script_id,
                    worker_schedules.c.cron == entry.expression,
                )
                .values(updated_at=now)
            )
            continue
        following = entry.next_after(now)
        if following is None:  # parse() refuses those; a guard for the clock's edge
            continue
        conn.execute(
            insert(worker_schedules).values(
                script_id=script_id,
                cron=entry.expression,
                account_id=account_id,
                created_at=now,
                updated_at=now,
                next_run_at=following,
            )
        )


def _require_script(conn: Connection, account_id: str, name: str) -> str:
    script_id = conn.execute(
        select(scripts.c.id).where(scripts.c.account_id == account_id, scripts.c.name == name)
    ).scalar()
    if script_id is None:
        raise ScriptNotFound(f"This Worker does not exist on your account: {name!r}.")
    return str(script_id)


def _listing(conn: Connection, script_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(worker_schedules)
        .where(worker_schedules.c.script_id == script_id)
        .order_by(worker_schedules.c.created_at, worker_schedules.c.cron)
    ).all()
    return [
        {
            "cron": r.cron,
            "created_on": iso(_aware(r.created_at)),
            "modified_on": iso(_aware(r.updated_at)),
        }
        for r in rows
    ]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
