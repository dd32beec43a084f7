"""Tainted client addresses (issue 9): the address a temporary account was provisioned from
answers for the account's Workers.

A new temporary account is a fresh start for the quarantine rules (services/workers/
quarantine.py), so one address could provision `accounts_per_hour` accounts and spend each one's
first incident freezing or killing a shard. So a Worker quarantine of an unclaimed temporary
account taints the address group it was provisioned from (`accounts.created_by_ip`: the key the
provisioning limits use, IPv6 by its /64) for `address_taint_seconds`. While the address is
tainted its new temporary accounts cost the maximum proof of work, whatever the pressure, and at
most `tainted_accounts_per_hour` of them are created an hour (429 with Retry-After naming why);
an event code's accounts cost the maximum work too (a code can leak) and stay bounded by the
event's budget, so a workshop behind one address keeps working after one participant's loop.

Only a verdict taints: a Worker the rule quarantined (a certain incident, or the prime suspect of
two ambiguous ones), never a suspect it did not quarantine. A claimed account's Worker does not
(a human answers for it, and the address that provisioned it is no longer who runs it). An
operator's lift of the Worker's quarantine clears the taints it caused; `mayfly admin taint clear
ADDRESS` clears an address. One row per verdict: the address is tainted while any of its rows
runs, until the last one's end. Rows outlive the account that caused them (its address answers
after it expires) and are purged once they ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from mayfly.errors import NotFound
from mayfly.model import as_utc, iso_seconds
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.core.ratelimit import address_group
from mayfly.settings import Settings
from mayfly.storage.tables import accounts, address_taints

TAINTED = "account.address_tainted"  # audit events: on the account whose Worker caused it
CLEARED = "account.address_taint_cleared"
WHY = "accounts created from this address took the platform down recently"


@dataclass(frozen=True)
class AddressTaint:
    id: int
    address: str
    account_id: str  # the account whose Worker was quarantined
    script: str
    kind: str
    tainted_at: datetime
    until: datetime
    cleared_at: datetime | None = None
    cleared_by: str | None = None

    def is_active(self, now: datetime) -> bool:
        return self.cleared_at is None and as_utc(self.until) > now

    def seconds_left(self, now: datetime) -> int:
        return max(0, math.ceil((as_utc(self.until) - now).total_seconds()))

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "address": self.address,
            "account_id": self.account_id,
            "script": self.script,
            "kind": self.kind,
            "tainted_at": iso_seconds(self.tainted_at),
            "until": iso_seconds(self.until),
            "seconds_left": self.seconds_left(now),
            "cleared_at": iso_seconds(self.cleared_at) if self.cleared_at else None,
            "cleared_by": self.cleared_by,
        }


def from_row(row: Any) -> AddressTaint:
    return AddressTaint(
        id=row.id,
        address=row.address,
        account_id=row.account_id,
        script=row.script,
        kind=row.kind,
        tainted_at=as_utc(row.tainted_at),
        until=as_utc(row.until),
        cleared_at=as_utc(row.cleared_at) if row.cleared_at is not None else None,
        cleared_by=row.cleared_by,
    )


def taints_address(kind: str, claimed: bool, address: str | None) -> bool:
    """Whether a Worker quarantine of this account taints the address it was provisioned from:
    only an unclaimed temporary account's, with a recorded address."""
    return kind == "temporary" and not claimed and bool(address)


def taint_for_verdict(
    conn: Connection,
    settings: Settings,
    account_id: str,
    script: str,
    kind: str,
    actor: str,
    now: datetime,
) -> AddressTaint | None:
    """A Worker of the account was just quarantined: taint the address the account was
    provisioned from, if the rule says so (module docstring). In the caller's transaction."""
    if settings.address_taint_seconds <= 0:
        return None
    row = conn.execute(
        select(accounts.c.kind, accounts.c.claimed_at, accounts.c.created_by_ip).where(
            accounts.c.id == account_id
        )
    ).first()
    if row is None or not taints_address(row.kind, row.claimed_at is not None, row.created_by_ip):
        return None
    conn.execute(delete(address_taints).where(address_taints.c.until <= now))
    until = now + timedelta(seconds=settings.address_taint_seconds)
    values = {
        "address": row.created_by_ip,
        "account_id": account_id,
        "script": script,
        "kind": kind[:16],
        "tainted_at": now,
        "until": until,
    }
    inserted = conn.execute(insert(address_taints).values(**values)).inserted_primary_key
    assert inserted is not None
    taint_id = int(inserted[0])
    audit.record(
        conn,
        account_id,
        TAINTED,
        actor,
        now,
        address=row.created_by_ip,
        script=script,
        kind=kind,
        until=iso_seconds(until),
    )
    return AddressTaint(id=taint_id, **values)


def active_taint(conn: Connection, address: str, now: datetime) -> AddressTaint | None:
    """The address's running taint that ends last, or None."""
    row = conn.execute(
        select(address_taints)
        .where(
            address_taints.c.address == address,
            address_taints.c.until > now,
            address_taints.c.cleared_at.is_(None),
        )
        .order_by(address_taints.c.until.desc())
        .limit(1)
    ).first()
    return from_row(row) if row is not None else None


def _clear(conn: Connection, rows: list[AddressTaint], actor: str, now: datetime) -> None:
    if not rows:
        return
    conn.execute(
        update(address_taints)
        .where(address_taints.c.id.in_([r.id for r in rows]))
        .values(cleared_at=now, cleared_by=actor)
    )
    for r in rows:
        audit.record(
            conn,
            r.account_id,
            CLEARED,
            actor,
            now,
            address=r.address,
            script=r.script,
            until=iso_seconds(r.until),
        )


def clear_worker_taints(
    conn: Connection, account_id: str, script: str, actor: str, now: datetime
) -> list[AddressTaint]:
    """An operator lifted the Worker's quarantine: the taints its verdicts caused end too."""
    rows = [
        from_row(r)
        for r in conn.execute(
            select(address_taints).where(
                address_taints.c.account_id == account_id,
                address_taints.c.script == script,
                address_taints.c.until > now,
                address_taints.c.cleared_at.is_(None),
            )
        )
    ]
    _clear(conn, rows, actor, now)
    return rows


class TaintService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def active(self, address: str) -> AddressTaint | None:
        with self.ctx.db.read() as conn:
            return active_taint(conn, address, self.ctx.clock.now())

    def list_all(self, include_ended: bool = False) -> list[AddressTaint]:
        """Taints (running ones unless `include_ended`), the latest end first."""
        now = self.ctx.clock.now()
        query = select(address_taints)
        if not include_ended:
            query = query.where(address_taints.c.until > now, address_taints.c.cleared_at.is_(None))
        with self.ctx.db.read() as conn:
            rows = conn.execute(query.order_by(address_taints.c.until.desc())).all()
        return [from_row(r) for r in rows]

    def clear(self, address: str, actor: str = "operator") -> list[AddressTaint]:
        """End every running taint of the address (a client address, or its group: an IPv6
        address counts as its /64) now; NotFound when none runs."""
        group = address_group(address.strip())
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            rows = [
                from_row(r)
                for r in conn.execute(
                    select(address_taints).where(
                        address_taints.c.address == group,
                        address_taints.c.until > now,
                        address_taints.c.cleared_at.is_(None),
                    )
                )
            ]
            if not rows:
                raise NotFound(f"Address {group} is not tainted.")
            _clear(conn, rows, actor, now)
        return rows

    def purge(self) -> int:
        """Delete the taints that ended (housekeeping); how many went."""
        with self.ctx.db.begin() as conn:
            return conn.execute(
                delete(address_taints).where(address_taints.c.until <= self.ctx.clock.now())
            ).rowcount
