"""A person's API tokens: `mfp_` tokens bound to them and scoped to one account they own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from mayfly.errors import NotFound, ValidationError
from mayfly.model import as_utc
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.identity.memberships import require_member
from mayfly.services.identity.tokens import create_token
from mayfly.services.identity.users import User
from mayfly.storage.tables import accounts, api_tokens

TokenStatus = Literal["active", "expired", "revoked"]


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    account_id: str
    account_name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    status: TokenStatus


def check_token_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationError("Give the token a name of 1-200 characters, like “laptop CLI”.")
    return name


class UserTokenService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def _info(self, row: Any) -> TokenInfo:
        now = self.ctx.clock.now()
        status: TokenStatus = "active"
        if row.revoked_at is not None:
            status = "revoked"
        elif row.expires_at is not None and as_utc(row.expires_at) <= now:
            status = "expired"
        return TokenInfo(
            id=row.id,
            name=row.name,
            account_id=row.account_id,
            account_name=row.account_name,
            created_at=as_utc(row.created_at),
            expires_at=as_utc(row.expires_at) if row.expires_at else None,
            revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
            status=status,
        )

    def _query(self, conn: Connection, user_id: str, *conditions: Any) -> list[TokenInfo]:
        rows = conn.execute(
            select(api_tokens, accounts.c.name.label("account_name"))
            .join(accounts, accounts.c.id == api_tokens.c.account_id)
            .where(api_tokens.c.user_id == user_id, *conditions)
            .order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
        ).all()
        return [self._info(r) for r in rows]

    def tokens_of(self, user_id: str, account_id: str | None = None) -> list[TokenInfo]:
        """The user's tokens (all accounts, or one), newest first; never the token values."""
        conditions = [] if account_id is None else [api_tokens.c.account_id == account_id]
        with self.ctx.db.read() as conn:
            return self._query(conn, user_id, *conditions)

    def get(self, user_id: str, token_id: str, account_id: str | None = None) -> TokenInfo:
        conditions = [api_tokens.c.id == token_id]
        if account_id is not None:
            conditions.append(api_tokens.c.account_id == account_id)
        with self.ctx.db.read() as conn:
            found = self._query(conn, user_id, *conditions)
        if not found:
            raise NotFound(f"No API token {token_id!r} of yours.")
        return found[0]

    def create(
        self,
        user: User,
        account_id: str,
        name: str,
        expires_at: datetime | None = None,
        *,
        via: str = "dashboard",
        conn: Connection | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token for one of the user's accounts; returns it with its value (shown once)."""
        name = check_token_name(name)
        now = self.ctx.clock.now()
        if expires_at is not None and as_utc(expires_at) <= now:
            raise ValidationError("A token's expiry must be in the future.")
        if conn is None:
            with self.ctx.db.begin() as own:
                return self._create(own, user, account_id, name, expires_at, via, now)
        return self._create(conn, user, account_id, name, expires_at, via, now)

    def _create(
        self,
        conn: Connection,
        user: User,
        account_id: str,
        name: str,
        expires_at: datetime | None,
        via: str,
        now: datetime,
    ) -> tuple[TokenInfo, str]:
        account = require_member(conn, user.id, account_id)
        token_id, token = create_token(
            conn,
            account_id=account.id,
            kind="permanent",
            name=name,
            now=now,
            expires_at=expires_at,
            user_id=user.id,
        )
        audit.record(
            conn,
            account.id,
            "token.created",
            user.email,
            now,
            token_id=token_id,
            name=name,
            via=via,
        )
        return self._query(conn, user.id, api_tokens.c.id == token_id)[0], token

    def revoke(self, user: User, token_id: str, account_id: str | None = None) -> TokenInfo:
        """Revoke one of the user's tokens (idempotent); NotFound for anyone else's."""
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            conditions = [api_tokens.c.id == token_id]
            if account_id is not None:
                conditions.append(api_tokens.c.account_id == account_id)
            found = self._query(conn, user.id, *conditions)
            if not found:
                raise NotFound(f"No API token {token_id!r} of yours.")
            if found[0].revoked_at is None:
                conn.execute(
                    update(api_tokens)
                    .where(api_tokens.c.id == token_id)
                    .values(revoked_at=now, revoked_reason="revoked")
                )
                audit.record(
                    conn,
                    found[0].account_id,
                    "token.revoked",
                    user.email,
                    now,
                    token_id=token_id,
                    name=found[0].name,
                )
            return self._query(conn, user.id, api_tokens.c.id == token_id)[0]
