"""Server-side log-in sessions: a random id in a cookie, only its hash in the database."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from mayfly.model import as_utc
from mayfly.services.context import ServiceContext
from mayfly.services.core.crypto import hash_token
from mayfly.services.identity.users import User
from mayfly.storage.tables import sessions, users

SESSION_TTL = timedelta(days=14)
# Log-ins a user may keep at once; a new one ends the oldest beyond it (a log-in loop, or a
# script that never logs out, cannot grow the table without bound).
MAX_SESSIONS_PER_USER = 50


@dataclass(frozen=True)
class Session:
    user: User
    expires_at: datetime


class SessionService:
    def __init__(self, ctx: ServiceContext, ttl: timedelta = SESSION_TTL):
        self.ctx = ctx
        self.ttl = ttl

    def create(self, user_id: str) -> str:
        """A new session; returns the cookie value (256 random bits, never stored)."""
        session_id = secrets.token_urlsafe(32)
        id_hash = hash_token(session_id)
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            conn.execute(
                insert(sessions).values(
                    id_hash=id_hash,
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
            oldest = (
                conn.execute(
                    select(sessions.c.id_hash)
                    .where(sessions.c.user_id == user_id, sessions.c.id_hash != id_hash)
                    .order_by(sessions.c.created_at.desc(), sessions.c.id_hash)
                    .offset(MAX_SESSIONS_PER_USER - 1)
                )
                .scalars()
                .all()
            )
            if oldest:
                conn.execute(delete(sessions).where(sessions.c.id_hash.in_(oldest)))
        return session_id

    def lookup(self, session_id: str) -> Session | None:
        """The live session for a cookie value, or None (unknown, ended or expired)."""
        if not session_id:
            return None
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(sessions.c.expires_at, users.c.id, users.c.email, users.c.created_at)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.id_hash == hash_token(session_id))
            ).first()
        if row is None or as_utc(row.expires_at) <= self.ctx.clock.now():
            return None
        return Session(User(row.id, row.email, row.created_at), as_utc(row.expires_at))

    def end(self, session_id: str) -> None:
        with self.ctx.db.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id_hash == hash_token(session_id)))
