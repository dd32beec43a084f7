"""Quarantine: a Worker that took a data-plane shard down answers 503 for a while.

The data plane reports every shard it kills as an incident naming the versions in flight, the
prime suspect first (runtime/incidents.py). The rule, per Worker (account and script name, so a
new deploy does not lift a quarantine by itself, nor does deleting and re-creating the Worker):

* A certain incident (one version was all that ran) quarantines that version's Worker at once.
* An uncertain incident quarantines nobody by itself. Every suspect is recorded; a Worker is
  quarantined when it was the prime suspect (the data plane's first suspect:
  runtime/incidents.py) of two uncertain incidents within `quarantine_window`. A neighbour that
  merely had requests in flight next to the offender is never the prime suspect, so it is never
  quarantined, however often the offender strikes; one that became the prime suspect once by a
  race (its request started just after the offender's, before the offender began to spin) is
  not quarantined either.
* An incident naming a Worker already in quarantine adds no strike: several shards can fall to
  one offender at the same moment, before the quarantine reaches them.
* Cooldown: `quarantine_cooldown` × 2^(strikes − 1), at most `quarantine_max`. Strikes decay: each
  `quarantine_decay` seconds of quiet after a quarantine ended forgive one.
* An operator lift ends the quarantine now and forgives every strike.

Every quarantine and lift writes an audit entry naming the version, the kind and the detail.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import NotFound
from mayfly.model import Account, iso_seconds
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.workers.quarantine_rules import (
    Quarantine,
    active_quarantine,
    cooldown_seconds,
    decayed_strikes,
    from_row,
    suspended_error,
)
from mayfly.storage.tables import accounts, incidents, quarantines, scripts, versions

log = logging.getLogger("mayfly.quarantine")

DATA_PLANE = "data-plane"
DETAIL_MAX = 1000


@dataclass(frozen=True)
class Outcome:
    """What one incident started: the quarantines, and the hosts whose cached routes must go."""

    started: list[Quarantine]
    hosts: list[str]


@dataclass(frozen=True)
class Suspect:
    account_id: str
    account_name: str
    script: str
    version_id: str
    prime: bool


class QuarantineService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    # -- incidents -------------------------------------------------------------------------

    def record_incident(
        self,
        *,
        kind: str,
        shard: str,
        suspects: Sequence[str],
        certain: bool,
        detail: str,
    ) -> Outcome:
        """Apply the rule (module docstring) to one incident."""
        s = self.ctx.settings
        now = self.ctx.clock.now()
        detail = detail[:DETAIL_MAX]
        incident_id = secrets.token_hex(16)
        started: list[Quarantine] = []
        hosts: list[str] = []
        with self.ctx.db.begin() as conn:
            found = self._suspects(conn, suspects)
            conn.execute(
                delete(incidents).where(
                    incidents.c.created_at < now - timedelta(seconds=s.quarantine_window)
                )
            )
            for suspect in found:
                conn.execute(
                    insert(incidents).values(
                        incident_id=incident_id,
                        account_id=suspect.account_id,
                        script=suspect.script,
                        version_id=suspect.version_id,
                        kind=kind[:16],
                        certain=certain,
                        prime=suspect.prime,
                        shard=shard[:64],
                        detail=detail,
                        created_at=now,
                    )
                )
            for suspect in self._guilty(conn, found, certain, now):
                quarantine = self._quarantine(conn, suspect, kind, shard, detail, certain, now)
                if quarantine is not None:
                    started.append(quarantine)
                    hosts.append(self.ctx.worker_host(suspect.script, suspect.account_name))
        for q in started:
            log.warning(
                "quarantined Worker %s of account %s until %s: %s (%s)",
                q.script,
                q.account_id,
                iso_seconds(q.until),
                q.reason,
                detail,
            )
        return Outcome(started, hosts)

    def _suspects(self, conn: Connection, version_ids: Sequence[str]) -> list[Suspect]:
        """The suspects' Workers, one per Worker, in the order given (unknown versions dropped)."""
        out: list[Suspect] = []
        seen: set[tuple[str, str]] = set()
        for position, version_id in enumerate(version_ids):
            row = conn.execute(
                select(scripts.c.account_id, scripts.c.name, accounts.c.name.label("account_name"))
                .select_from(
                    versions.join(scripts, scripts.c.id == versions.c.script_id).join(
                        accounts, accounts.c.id == scripts.c.account_id
                    )
                )
                .where(versions.c.id == version_id)
            ).first()
            if row is None:
                log.info("incident names version %s, which no longer exists", version_id)
                continue
            key = (row.account_id, row.name)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Suspect(row.account_id, row.account_name, row.name, version_id, position == 0)
            )
        return out

    def _guilty(
        self, conn: Connection, found: list[Suspect], certain: bool, now: datetime
    ) -> list[Suspect]:
        if certain:
            return [s for s in found if s.prime][:1]
        since = now - timedelta(seconds=self.ctx.settings.quarantine_window)
        guilty = []
        for suspect in found:
            rows = conn.execute(
                select(incidents.c.incident_id, incidents.c.prime).where(
                    incidents.c.account_id == suspect.account_id,
                    incidents.c.script == suspect.script,
                    incidents.c.certain.is_(False),
                    incidents.c.created_at >= since,
                )
            ).all()
            if len({r.incident_id for r in rows if r.prime}) >= 2:
                guilty.append(suspect)
        return guilty

    def _quarantine(
        self,
        conn: Connection,
        suspect: Suspect,
        kind: str,
        shard: str,
        detail: str,
        certain: bool,
        now: datetime,
    ) -> Quarantine | None:
        s = self.ctx.settings
        row = conn.execute(
            select(quarantines).where(
                quarantines.c.account_id == suspect.account_id,
                quarantines.c.script == suspect.script,
            )
        ).first()
        previous = from_row(row) if row is not None else None
        if previous is not None and previous.is_active(now):
            return None
        strikes = decayed_strikes(previous, now, s.quarantine_decay) + 1
        seconds = cooldown_seconds(strikes, s.quarantine_cooldown, s.quarantine_max)
        values = {
            "version_id": suspect.version_id,
            "kind": kind[:16],
            "detail": detail,
            "started_at": now,
            "until": now + timedelta(seconds=seconds),
            "strikes": strikes,
            "lifted_at": None,
            "lifted_by": None,
        }
        if row is None:
            conn.execute(
                insert(quarantines).values(
                    account_id=suspect.account_id, script=suspect.script, **values
                )
            )
        else:
            conn.execute(
                update(quarantines)
                .where(
                    quarantines.c.account_id == suspect.account_id,
                    quarantines.c.script == suspect.script,
                )
                .values(**values)
            )
        audit.record(
            conn,
            suspect.account_id,
            "worker.quarantined",
            DATA_PLANE,
            now,
            script=suspect.script,
            version_id=suspect.version_id,
            kind=kind,
            detail=detail,
            shard=shard,
            certain=certain,
            strikes=strikes,
            seconds=round(seconds),
            until=iso_seconds(now + timedelta(seconds=seconds)),
        )
        return Quarantine(
            account_id=suspect.account_id,
            script=suspect.script,
            version_id=suspect.version_id,
            kind=kind,
            detail=detail,
            started_at=now,
            until=now + timedelta(seconds=seconds),
            strikes=strikes,
        )

    # -- reads -----------------------------------------------------------------------------

    def active(self, account_id: str, script: str) -> Quarantine | None:
        with self.ctx.db.read() as conn:
            return active_quarantine(conn, account_id, script, self.ctx.clock.now())

    def check(self, account: Account, script: str) -> None:
        """Raise 10060 when the Worker is quarantined (API calls that touch it)."""
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            found = active_quarantine(conn, account.id, script, now)
        if found is not None:
            raise suspended_error(found, now)

    def active_in(self, account_ids: Sequence[str]) -> list[Quarantine]:
        """Running quarantines of these accounts, by account then script."""
        if not account_ids:
            return []
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(quarantines)
                .where(
                    quarantines.c.account_id.in_(list(account_ids)),
                    quarantines.c.until > now,
                    quarantines.c.lifted_at.is_(None),
                )
                .order_by(quarantines.c.account_id, quarantines.c.script)
            ).all()
        return [from_row(r) for r in rows]

    def list_all(self, include_ended: bool = False) -> list[tuple[Quarantine, str]]:
        """Every quarantine (running ones unless `include_ended`) with its account's name."""
        now = self.ctx.clock.now()
        query = select(quarantines, accounts.c.name.label("account_name")).join(
            accounts, accounts.c.id == quarantines.c.account_id
        )
        if not include_ended:
            query = query.where(quarantines.c.until > now, quarantines.c.lifted_at.is_(None))
        with self.ctx.db.read() as conn:
            rows = conn.execute(query.order_by(quarantines.c.until.desc())).all()
        return [(from_row(r), r.account_name) for r in rows]

    # -- operator --------------------------------------------------------------------------

    def lift(self, account: str, script: str, actor: str = "operator") -> tuple[Quarantine, str]:
        """End a running quarantine now and forgive its strikes. `account` is a name or an id.

        Returns the quarantine as it was and the Worker's host (for route invalidation)."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            owner = conn.execute(
                select(accounts.c.id, accounts.c.name).where(
                    (accounts.c.id == account) | (accounts.c.name == account)
                )
            ).first()
            if owner is None:
                raise NotFound(f"No account named {account!r}.")
            found = active_quarantine(conn, owner.id, script, now)
            if found is None:
                raise NotFound(f"Worker {script!r} of {owner.name} is not quarantined.")
            conn.execute(
                update(quarantines)
                .where(quarantines.c.account_id == owner.id, quarantines.c.script == script)
                .values(lifted_at=now, lifted_by=actor, until=now, strikes=0)
            )
            audit.record(
                conn,
                owner.id,
                "worker.quarantine_lifted",
                actor,
                now,
                script=script,
                version_id=found.version_id,
                kind=found.kind,
                detail=found.detail,
                until=iso_seconds(found.until),
            )
        return found, self.ctx.worker_host(script, owner.name)

    async def report(
        self, *, kind: str, shard: str, suspects: Sequence[str], certain: bool, detail: str
    ) -> Outcome:
        """`record_incident` off the event loop (the data plane's callback runs on it)."""

        def record() -> Outcome:
            try:
                return self.record_incident(
                    kind=kind, shard=shard, suspects=suspects, certain=certain, detail=detail
                )
            except IntegrityError:
                # Two shards fell to one Worker at once and both inserted its first quarantine:
                # once the other committed, this one finds it running and adds no strike.
                return self.record_incident(
                    kind=kind, shard=shard, suspects=suspects, certain=certain, detail=detail
                )

        return await asyncio.to_thread(record)


def move_worker_quarantine(
    conn: Connection, source_id: str, name: str, target_id: str, new_name: str
) -> None:
    """A claim moves a Worker into another account: its quarantine and strikes go with it."""
    moving = conn.execute(
        select(quarantines.c.script).where(
            quarantines.c.account_id == source_id, quarantines.c.script == name
        )
    ).first()
    if moving is not None:
        # A row under the new name can only be left from a deleted Worker of the target.
        conn.execute(
            delete(quarantines).where(
                quarantines.c.account_id == target_id, quarantines.c.script == new_name
            )
        )
        conn.execute(
            update(quarantines)
            .where(quarantines.c.account_id == source_id, quarantines.c.script == name)
            .values(account_id=target_id, script=new_name)
        )
    conn.execute(
        update(incidents)
        .where(incidents.c.account_id == source_id, incidents.c.script == name)
        .values(account_id=target_id, script=new_name)
    )
