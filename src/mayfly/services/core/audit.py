"""Audit entries: what happened to an account, when, by whom. Never content, never secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from mayfly.storage.tables import audit_events


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


def events_for(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(audit_events)
        .where(audit_events.c.account_id == account_id)
        .order_by(audit_events.c.id)
    ).all()
    return [dict(row._mapping) for row in rows]
