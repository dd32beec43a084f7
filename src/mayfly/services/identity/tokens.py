"""API tokens: random, shown once, stored hashed, scoped to one account."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, insert, select, update

from mayfly.errors import (
    InvalidToken,
    MalformedToken,
    TemporaryAccountClaimed,
    TemporaryAccountExpired,
    UnknownToken,
)
from mayfly.model import AccountKind, Principal, as_utc
from mayfly.services.context import ServiceContext
from mayfly.services.core.crypto import hash_token
from mayfly.storage.tables import accounts, api_tokens, users

PREFIXES: dict[AccountKind, str] = {"temporary": "mft_", "permanent": "mfp_"}

EXPIRED_MESSAGE = (
    "This temporary account has expired and was deleted. "
    "Run `mayfly deploy --temporary` (or `wrangler logout`, then `wrangler deploy --temporary`) "
    "to get a new one."
)
CLAIMED_MESSAGE = (
    "This temporary account was claimed by a human, who now owns it; this token no longer works. "
    "Ask them for a token of their own, or run `mayfly deploy --temporary` for a new account."
)


# What new_token makes: a prefix and 32 random bytes in URL-safe base64 (43 characters).
TOKEN_FORM = re.compile(r"mf[pt]_[A-Za-z0-9_-]{43}")


def new_token(kind: AccountKind) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def create_token(
    conn: Connection,
    *,
    account_id: str,
    kind: AccountKind,
    name: str,
    now: datetime,
    expires_at: datetime | None = None,
    user_id: str | None = None,
) -> tuple[str, str]:
    """Insert a token; returns (token id, the token itself, which is never stored)."""
    token = new_token(kind)
    token_id = secrets.token_hex(16)
    conn.execute(
        insert(api_tokens).values(
            id=token_id,
            token_hash=hash_token(token),
            account_id=account_id,
            user_id=user_id,
            name=name,
            kind=kind,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return token_id, token


def revoke_account_tokens(conn: Connection, account_id: str, reason: str, now: datetime) -> None:
    conn.execute(
        update(api_tokens)
        .where(api_tokens.c.account_id == account_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


def _token_query() -> Select[Any]:
    return select(
        api_tokens.c.id,
        api_tokens.c.account_id,
        api_tokens.c.kind,
        api_tokens.c.user_id,
        api_tokens.c.expires_at,
        api_tokens.c.revoked_at,
        api_tokens.c.revoked_reason,
        accounts.c.expires_at.label("account_expires_at"),
        users.c.email,
    ).select_from(
        api_tokens.join(accounts, accounts.c.id == api_tokens.c.account_id).outerjoin(
            users, users.c.id == api_tokens.c.user_id
        )
    )


def _refuse_unusable(row: Any, now: datetime) -> None:
    """The error for a revoked or expired token (or its expired temporary account), if any."""
    if row.revoked_at is not None:
        if row.revoked_reason == "claimed":
            raise TemporaryAccountClaimed(CLAIMED_MESSAGE)
        if row.kind == "temporary":
            raise TemporaryAccountExpired(EXPIRED_MESSAGE)
        raise UnknownToken("Invalid access token: this API token was revoked.")
    expiry = row.account_expires_at if row.kind == "temporary" else row.expires_at
    if expiry is not None and as_utc(expiry) <= now:
        if row.kind == "temporary":
            raise TemporaryAccountExpired(EXPIRED_MESSAGE)
        raise UnknownToken("Invalid access token: this API token has expired.")


def require_usable_token(conn: Connection, token_id: str, now: datetime) -> None:
    """For credentials derived from a token (asset upload JWTs): they die with it, and with its
    account's claim or expiry. Deleted tokens and accounts read as an expired account."""
    row = conn.execute(_token_query().where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise TemporaryAccountExpired(EXPIRED_MESSAGE)
    _refuse_unusable(row, now)


class TokenService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def authenticate(self, token: str) -> Principal:
        """The principal for a bearer token, or the error that tells the caller what to do."""
        if not token:
            raise InvalidToken("Missing API token: send `Authorization: Bearer <token>`.")
        if not TOKEN_FORM.fullmatch(token):
            raise MalformedToken(
                "Invalid request headers: the API token is not of the form mfp_… or mft_… "
                "(a typo or a truncated copy?)."
            )
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            row = conn.execute(
                _token_query().where(api_tokens.c.token_hash == hash_token(token))
            ).first()
        if row is None:
            if token.startswith(PREFIXES["temporary"]):
                raise TemporaryAccountExpired(EXPIRED_MESSAGE)
            raise UnknownToken("Invalid access token: this platform knows no such API token.")
        _refuse_unusable(row, now)
        return Principal(
            token_id=row.id,
            account_id=row.account_id,
            token_kind=row.kind,
            user_id=row.user_id,
            email=row.email,
        )
