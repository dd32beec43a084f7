"""Audit entries: what happened to an account, when, by whom. Never content, never secrets.

Every state change an account makes through the API is an entry (a deploy, a secret put, a
namespace created, a token), and those come as fast as the API answers: so an account keeps at
most about MAX_ENTRIES_PER_ACCOUNT of them, the oldest trimmed first after one write in
TRIM_EVERY (on top of the `--audit-retention` purge). Its lifecycle entries (`account.*`: created, provisioned, claimed,
merged, extended, suspended, resumed, quarantined, deleted) are never trimmed: each is bounded by
something else (one per account, an operator's action, `--extensions-max`, the quarantine's
cooldowns), and extensions are counted from them. The trim reads only the account's own entries
(the account_id index), whatever the size of the table: about 1 ms at the cap on SQLite, 3-5 ms on
PostgreSQL, paid by one write in TRIM_EVERY."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from mayfly.storage.tables import audit_events

# About 110 entries a day for the default 90 days of retention: far more than a person or an
# agent deploying all day writes, small enough that a loop of secret puts cannot grow the table.
MAX_ENTRIES_PER_ACCOUNT = 10_000
LIFECYCLE = "account."  # the prefix of the entries never trimmed
# The trim reads up to MAX_ENTRIES_PER_ACCOUNT index entries, so it runs after one write in this
# many, drawn at random (a rule on the entry's id could be dodged: two accounts writing in turn
# would leave one never trimmed): an account writing in a loop stays about this many entries past
# the cap (past 1,000 with a chance of about 1e-7), and no write pays the trim every time.
TRIM_EVERY = 64


def record(
    conn: Connection,
    account_id: str,
    event: str,
    actor: str,
    at: datetime,
    **details: Any,
) -> None:
    conn.execute(
        insert(audit_events).values(
            account_id=account_id, event=event, actor=actor, created_at=at, details=details
        )
    )
    if random.randrange(TRIM_EVERY) == 0:
        trim(conn, account_id)


def trim(conn: Connection, account_id: str) -> int:
    """Delete the account's routine entries older than its newest MAX_ENTRIES_PER_ACCOUNT
    entries; how many went (lifecycle entries count towards the boundary, and stay below it)."""
    boundary = conn.execute(
        select(audit_events.c.id)
        .where(audit_events.c.account_id == account_id)
        .order_by(audit_events.c.id.desc())
        .offset(MAX_ENTRIES_PER_ACCOUNT)
        .limit(1)
    ).scalar()
    if boundary is None:
        return 0
    return conn.execute(
        delete(audit_events).where(
            audit_events.c.account_id == account_id,
            audit_events.c.id <= boundary,
            audit_events.c.event.not_like(LIFECYCLE + "%"),
        )
    ).rowcount


def events_for(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(audit_events)
        .where(audit_events.c.account_id == account_id)
        .order_by(audit_events.c.id)
    ).all()
    return [dict(row._mapping) for row in rows]
