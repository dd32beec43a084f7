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

A Worker's quarantine cannot be shed by deploying the same code under another name: that name's
first incident is a fresh one for the rule above. So the account answers for its Workers
(`quarantine_rules.escalation`): once `quarantine_account_workers` distinct Workers of one account
were quarantined within `quarantine_account_window`, the whole account is. Only quarantines count
(the verdicts above), never a suspect that was not quarantined, so an innocent neighbour's account
never is; a Worker quarantine an operator lifted does not count either. While the account is
quarantined every Worker of it answers 503, nothing can be uploaded or deployed under any name, and
incidents naming its Workers add no strike. Cooldown: `quarantine_account_cooldown` × 2^(strikes −
1), at most `quarantine_account_max`, strikes decaying as a Worker's; the verdicts that started it
are spent (the next one takes as many new ones). An operator lift ends it and forgives its strikes.

A Worker quarantine of an unclaimed temporary account also taints the client address the
account was provisioned from (services/temporary/taints.py): a new account is a fresh start for
the rules above, so the address answers for it. A lift of the Worker's quarantine clears it.

Every quarantine and lift writes an audit entry naming the version, the kind and the detail.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.model import iso_seconds
from mayfly.services.core import audit
from mayfly.services.temporary.taints import AddressTaint, taint_for_verdict
from mayfly.services.workers.quarantine_lifts import QuarantineLifts
from mayfly.services.workers.quarantine_rules import (
    AccountQuarantine,
    Quarantine,
    Verdict,
    account_from_row,
    active_account_quarantine,
    cooldown_seconds,
    decayed_strikes,
    escalation,
    from_row,
)
from mayfly.storage.tables import (
    account_quarantines,
    accounts,
    incidents,
    quarantines,
    scripts,
    versions,
)

log = logging.getLogger("mayfly.quarantine")

DATA_PLANE = "data-plane"
DETAIL_MAX = 1000


@dataclass(frozen=True)
class Outcome:
    """What one incident started: the quarantines (of Workers, and of whole accounts), and the
    hosts whose cached routes must go."""

    started: list[Quarantine]
    hosts: list[str]
    accounts: list[AccountQuarantine] = field(default_factory=list)
    taints: list[AddressTaint] = field(default_factory=list)  # addresses the verdicts tainted


@dataclass(frozen=True)
class Suspect:
    account_id: str
    account_name: str
    script: str
    version_id: str
    prime: bool


class QuarantineService(QuarantineLifts):
    """Takes in incidents (here); reads (quarantine_reads.py); lifts (quarantine_lifts.py)."""

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
        escalated: list[AccountQuarantine] = []
        tainted: list[AddressTaint] = []
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
            paused = {
                a for a in {s.account_id for s in found} if active_account_quarantine(conn, a, now)
            }
            for suspect in self._guilty(conn, found, certain, now):
                if suspect.account_id in paused:
                    continue  # it struck before its account's quarantine reached every shard
                quarantine = self._quarantine(conn, suspect, kind, shard, detail, certain, now)
                if quarantine is not None:
                    started.append(quarantine)
                    hosts.append(self.ctx.worker_host(suspect.script, suspect.account_name))
                    taint = taint_for_verdict(
                        conn, s, suspect.account_id, suspect.script, kind, DATA_PLANE, now
                    )
                    if taint is not None:
                        tainted.append(taint)
            names = {s.account_id: s.account_name for s in found}
            for account_id in dict.fromkeys(q.account_id for q in started):
                account = self._escalate(conn, account_id, kind, shard, detail, now)
                if account is not None:
                    escalated.append(account)
                    hosts.extend(
                        h
                        for h in self._hosts(conn, account_id, names[account_id])
                        if h not in hosts
                    )
        for q in started:
            log.warning(
                "quarantined Worker %s of account %s until %s: %s (%s)",
                q.script,
                q.account_id,
                iso_seconds(q.until),
                q.reason,
                detail,
            )
        for a in escalated:
            log.warning(
                "quarantined account %s until %s: %s (%s)",
                a.account_id,
                iso_seconds(a.until),
                a.reason,
                detail,
            )
        for t in tainted:
            log.warning(
                "tainted address %s until %s: Worker %s of account %s, provisioned from it, "
                "was quarantined",
                t.address,
                iso_seconds(t.until),
                t.script,
                t.account_id,
            )
        return Outcome(started, hosts, escalated, tainted)

    def _escalate(
        self, conn: Connection, account_id: str, kind: str, shard: str, detail: str, now: datetime
    ) -> AccountQuarantine | None:
        """Quarantine the account when its Workers' verdicts add up (quarantine_rules.escalation)."""
        s = self.ctx.settings
        row = conn.execute(
            select(account_quarantines).where(account_quarantines.c.account_id == account_id)
        ).first()
        previous = account_from_row(row) if row is not None else None
        if previous is not None and previous.is_active(now):
            return None
        verdicts = [
            Verdict(r.script, r.started_at)
            for r in conn.execute(
                select(quarantines.c.script, quarantines.c.started_at).where(
                    quarantines.c.account_id == account_id,
                    quarantines.c.lifted_at.is_(None),
                    quarantines.c.started_at
                    >= now - timedelta(seconds=s.quarantine_account_window),
                )
            )
        ]
        guilty = escalation(
            verdicts,
            now,
            workers=s.quarantine_account_workers,
            window=s.quarantine_account_window,
            spent_before=previous.started_at if previous is not None else None,
        )
        if guilty is None:
            return None
        strikes = decayed_strikes(previous, now, s.quarantine_decay) + 1
        seconds = cooldown_seconds(strikes, s.quarantine_account_cooldown, s.quarantine_account_max)
        until = now + timedelta(seconds=seconds)
        values = {
            "scripts": guilty,
            "kind": kind[:16],
            "detail": detail,
            "started_at": now,
            "until": until,
            "strikes": strikes,
            "lifted_at": None,
            "lifted_by": None,
        }
        if row is None:
            conn.execute(insert(account_quarantines).values(account_id=account_id, **values))
        else:
            conn.execute(
                update(account_quarantines)
                .where(account_quarantines.c.account_id == account_id)
                .values(**values)
            )
        audit.record(
            conn,
            account_id,
            "account.quarantined",
            DATA_PLANE,
            now,
            scripts=guilty,
            kind=kind,
            detail=detail,
            shard=shard,
            strikes=strikes,
            seconds=round(seconds),
            until=iso_seconds(until),
        )
        return AccountQuarantine(
            account_id=account_id,
            scripts=tuple(guilty),
            kind=kind[:16],
            detail=detail,
            started_at=now,
            until=until,
            strikes=strikes,
        )

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
