"""Event codes for workshops (issue 12, item 3).

An operator creates an event with a budget of temporary accounts and their lifetime. Accounts
provisioned with its code count against that budget instead of the per-address limits (a room
behind one NAT address), live for the event's TTL and name the event in their audit trail; the
proof of work is still required, since a code can leak. The organiser (the operator, or a user
named at creation) sees the event's accounts on the dashboard and can end the event, which
expires every unclaimed account it provisioned at once (their Workers answer 410).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mayfly.errors import EventEnded, EventExhausted, EventNotFound, NotFound, ValidationError
from mayfly.model import Account, as_utc, iso_seconds
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.identity.accounts import get_account
from mayfly.services.workers.inventory import WorkerSummary, workers_of
from mayfly.storage.tables import accounts, events

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud in a room
MAX_CODE = 64
MAX_TTL = 30 * 24 * 3600


@dataclass(frozen=True)
class Event:
    id: str
    name: str
    code: str
    accounts_max: int
    accounts_used: int
    ttl: int
    created_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    organiser_email: str | None

    def state(self, now: datetime) -> str:
        if self.ended_at is not None:
            return "ended"
        if self.expires_at is not None and as_utc(self.expires_at) <= now:
            return "expired"
        if self.accounts_used >= self.accounts_max:
            return "used up"
        return "open"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "code": self.code,
            "accounts": self.accounts_max,
            "accounts_used": self.accounts_used,
            "ttl": self.ttl,
            "created_at": iso_seconds(self.created_at),
            "expires_at": iso_seconds(self.expires_at) if self.expires_at else None,
            "ended_at": iso_seconds(self.ended_at) if self.ended_at else None,
            "organiser": self.organiser_email,
            "state": self.state(now),
        }


@dataclass(frozen=True)
class EventAccount:
    account: Account
    workers: list[WorkerSummary]
    claim_state: str  # unclaimed | claimed | expired


@dataclass(frozen=True)
class EventView:
    event: Event
    accounts: list[EventAccount]


def _event(row: Any) -> Event:
    return Event(
        id=row.id,
        name=row.name,
        code=row.code,
        accounts_max=row.accounts_max,
        accounts_used=row.accounts_used,
        ttl=row.ttl,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        ended_at=as_utc(row.ended_at) if row.ended_at else None,
        organiser_email=row.organiser_email,
    )


def new_code() -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
    return f"EVT-{body[:5]}-{body[5:]}"


def normalise_code(code: str) -> str:
    return code.strip().upper()


def take_account(conn: Connection, code: str, now: datetime) -> Event:
    """Count one account against the event of `code` (in the caller's transaction), or raise.

    The conditional UPDATE decides races: of concurrent deploys for the last account, one wins."""
    code = normalise_code(code)
    row = conn.execute(select(events).where(events.c.code == code[:MAX_CODE])).first()
    if row is None:
        raise EventNotFound("The event code was not found. Check it and try again.")
    event = _event(row)
    if event.state(now) in ("ended", "expired"):
        raise EventEnded(f"The event {event.name} has ended; its code provisions no accounts.")
    taken = conn.execute(
        update(events)
        .where(
            events.c.id == event.id,
            events.c.ended_at.is_(None),
            events.c.accounts_used < events.c.accounts_max,
        )
        .values(accounts_used=events.c.accounts_used + 1)
    ).rowcount
    if taken != 1:
        raise EventExhausted(
            f"The event {event.name} has no temporary accounts left "
            f"({event.accounts_max} were provisioned); ask its organiser."
        )
    return event


class EventService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def create(
        self,
        name: str,
        accounts_max: int,
        ttl: int,
        *,
        expires_at: datetime | None = None,
        organiser_email: str | None = None,
    ) -> Event:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationError("An event needs a name of 1 to 200 characters.")
        if accounts_max < 1:
            raise ValidationError("--accounts must be at least 1.")
        if not 60 <= ttl <= MAX_TTL:
            raise ValidationError(f"--ttl must be between 60 and {MAX_TTL} seconds.")
        now = self.ctx.clock.now()
        if expires_at is not None and as_utc(expires_at) <= now:
            raise ValidationError("--expires-at must be in the future.")
        organiser = organiser_email.strip().lower() if organiser_email else None
        event_id = secrets.token_hex(16)
        with self.ctx.db.begin() as conn:
            conn.execute(
                insert(events).values(
                    id=event_id,
                    name=name,
                    code=new_code(),
                    accounts_max=accounts_max,
                    accounts_used=0,
                    ttl=ttl,
                    created_at=now,
                    expires_at=expires_at,
                    organiser_email=organiser,
                )
            )
            return self._get(conn, event_id)

    def _get(self, conn: Connection, ref: str) -> Event:
        row = conn.execute(
            select(events).where(
                (events.c.id == ref) | (events.c.code == normalise_code(ref)[:MAX_CODE])
            )
        ).first()
        if row is None:
            raise NotFound(f"No event has the id or code {ref!r}.")
        return _event(row)

    def list_all(self) -> list[Event]:
        with self.ctx.db.read() as conn:
            rows = conn.execute(select(events).order_by(events.c.created_at)).all()
        return [_event(r) for r in rows]

    def organised_by(self, email: str) -> list[EventView]:
        """The events a user organises, each with its accounts, their Workers and claim state."""
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(events)
                .where(events.c.organiser_email == email.strip().lower())
                .order_by(events.c.created_at.desc())
            ).all()
            return [self._view(conn, _event(r), now) for r in rows]

    def _view(self, conn: Connection, event: Event, now: datetime) -> EventView:
        ids = conn.execute(
            select(accounts.c.id).where(accounts.c.event_id == event.id).order_by(accounts.c.name)
        ).scalars()
        found: list[EventAccount] = []
        for account_id in ids:
            account = get_account(conn, account_id)
            if account is None:
                continue
            if account.claimed_at is not None:
                state = "claimed"
            elif account.expires_at is not None and as_utc(account.expires_at) <= now:
                state = "expired"
            else:
                state = "unclaimed"
            found.append(EventAccount(account, workers_of(conn, self.ctx, account), state))
        return EventView(event, found)

    def require_organiser(self, ref: str, email: str) -> Event:
        with self.ctx.db.read() as conn:
            event = self._get(conn, ref)
        if event.organiser_email != email.strip().lower():
            raise NotFound(f"No event has the id or code {ref!r}.")
        return event

    async def end(self, ref: str, actor: str) -> tuple[Event, int]:
        """End the event: no more accounts, and every unclaimed account it made expires now.

        Returns the event and how many accounts were expired; their routes are invalidated."""
        event, hosts, expired = await asyncio.to_thread(self._end, ref, actor)
        if hosts:
            await self.ctx.invalidator.invalidate(hosts)
        return event, expired

    def _end(self, ref: str, actor: str) -> tuple[Event, list[str], int]:
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            event = self._get(conn, ref)
            if event.ended_at is None:
                conn.execute(update(events).where(events.c.id == event.id).values(ended_at=now))
            live = conn.execute(
                select(accounts.c.id).where(
                    accounts.c.event_id == event.id,
                    accounts.c.kind == "temporary",
                    accounts.c.claimed_at.is_(None),
                    accounts.c.expires_at > now,
                )
            ).scalars()
            hosts: list[str] = []
            expired = 0
            for account_id in list(live):
                conn.execute(
                    update(accounts).where(accounts.c.id == account_id).values(expires_at=now)
                )
                audit.record(
                    conn, account_id, "account.event_ended", actor, now, event_name=event.name
                )
                account = get_account(conn, account_id)
                assert account is not None
                hosts += [
                    self.ctx.worker_host(w.name, account.name)
                    for w in workers_of(conn, self.ctx, account)
                ]
                expired += 1
            return self._get(conn, event.id), hosts, expired
