"""`mayfly login` without a browser on the same machine: OAuth 2.0 device authorization (RFC 8628).

The CLI gets a device code (secret, polled with) and a short user code (typed or opened by a human
who is logged in elsewhere). Both are stored hashed. The token is created only when the CLI polls
after approval, in the transaction that marks the authorization used, so it is never stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import NotFound, RateLimited, ValidationError
from mayfly.model import as_utc
from mayfly.services.context import ServiceContext
from mayfly.services.core.crypto import hash_token
from mayfly.services.core.ratelimit import GLOBAL, SlidingWindowLimiter
from mayfly.services.identity.memberships import require_member
from mayfly.services.identity.user_tokens import UserTokenService
from mayfly.services.identity.users import User
from mayfly.storage.tables import accounts, device_authorizations, users

CLIENT_ID = "mayfly-cli"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 8628 §6.1: no vowels (no words), no digits (no 0/O, 1/I confusion). 20^8 ≈ 2.6e10 codes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8

OAuthErrorCode = Literal[
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
    "invalid_grant",
    "invalid_client",
    "invalid_request",
    "unsupported_grant_type",
]


class OAuthError(Exception):
    """An RFC 6749 §5.2 / RFC 8628 §3.5 error: `{"error": ..., "error_description": ...}`."""

    def __init__(self, error: OAuthErrorCode, description: str, status: int = 400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class PendingDevice:
    user_code: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    token_id: str
    account_id: str
    account_name: str
    email: str


def normalise_user_code(code: str) -> str:
    """`bcdf-ghjk`, `BCDF GHJK` and `BCDFGHJK` are one code."""
    return "".join(c for c in code.upper() if c.isalnum())


def display_user_code(code: str) -> str:
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


class DeviceAuthService:
    TTL = 600  # seconds a device code lives
    INTERVAL = 5  # seconds the CLI waits between polls (slow_down adds 5)
    TOKEN_NAME = "mayfly login (device authorization)"  # noqa: S105 (a label)

    def __init__(self, ctx: ServiceContext, user_tokens: UserTokenService):
        self.ctx = ctx
        self.user_tokens = user_tokens
        self.interval = self.INTERVAL
        # Wrong user codes typed by one logged-in person; 10 per 15 minutes.
        self.lookups = SlidingWindowLimiter(10, 15 * 60, "wrong codes")
        s = ctx.settings
        self.codes = SlidingWindowLimiter(s.device_codes_per_hour, 3600, "device codes")
        self.codes_total = SlidingWindowLimiter(s.device_codes_per_minute_total, 60, "device codes")

    @property
    def limiters(self) -> list[SlidingWindowLimiter]:
        return [self.lookups, self.codes, self.codes_total]

    def start(self, client_id: str, client: str) -> DeviceCode:
        """A new device code; RateLimited past the per-address or the server-wide limit."""
        if client_id != CLIENT_ID:
            raise OAuthError("invalid_client", f"Unknown client_id; use {CLIENT_ID!r}.", 401)
        now = self.ctx.clock.now()
        self.codes.hit(
            client,
            now.timestamp(),
            message="Too many `mayfly login` attempts from this address; try again later.",
        )
        self.codes_total.hit(
            GLOBAL,
            now.timestamp(),
            message="Too many `mayfly login` attempts right now; try again in a minute.",
        )
        device_code = secrets.token_urlsafe(32)
        for _ in range(5):
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            try:
                with self.ctx.db.begin() as conn:
                    conn.execute(
                        insert(device_authorizations).values(
                            device_code_hash=hash_token(device_code),
                            user_code_hash=hash_token(user_code),
                            client_id=client_id,
                            status="pending",
                            created_at=now,
                            expires_at=now + timedelta(seconds=self.TTL),
                            interval=self.interval,
                        )
                    )
                break
            except IntegrityError:
                continue
        else:  # pragma: no cover - five collisions in 2.6e10
            raise OAuthError("invalid_request", "Could not allocate a user code; retry.", 503)
        shown = display_user_code(user_code)
        uri = f"{self.ctx.settings.public_url}/device"
        return DeviceCode(
            device_code=device_code,
            user_code=shown,
            verification_uri=uri,
            verification_uri_complete=f"{uri}?user_code={shown}",
            expires_in=self.TTL,
            interval=self.interval,
        )

    # -- the human's side --------------------------------------------------------------------

    def _pending_row(self, conn: Connection, user: User, user_code: str) -> tuple[str, datetime]:
        code = normalise_user_code(user_code)
        now = self.ctx.clock.now()
        wait = self.lookups.retry_after(user.id, now.timestamp())
        if wait:
            raise RateLimited(
                "Too many wrong codes; wait a few minutes and try again.", retry_after=wait
            )
        row = conn.execute(
            select(device_authorizations).where(
                device_authorizations.c.user_code_hash == hash_token(code)
            )
        ).first()
        if row is None or row.status != "pending" or as_utc(row.expires_at) <= now:
            self.lookups.record(user.id, now.timestamp())
            raise NotFound(
                "That code is unknown, expired or already used. Check it against the one your "
                "terminal shows, or run `mayfly login` again."
            )
        return row.device_code_hash, as_utc(row.created_at)

    def pending(self, user: User, user_code: str) -> PendingDevice:
        """The waiting authorization a logged-in human typed the code of (for the confirm page)."""
        with self.ctx.db.read() as conn:
            _, created_at = self._pending_row(conn, user, user_code)
        code = normalise_user_code(user_code)
        return PendingDevice(
            display_user_code(code), created_at, created_at + timedelta(seconds=self.TTL)
        )

    def decide(self, user: User, user_code: str, approve: bool, account_id: str = "") -> None:
        """Approve (for one of the user's accounts) or deny a waiting CLI."""
        with self.ctx.db.begin() as conn:
            device_hash, _ = self._pending_row(conn, user, user_code)
            if approve:
                if not account_id:
                    raise ValidationError("Choose the account the CLI will act on.")
                require_member(conn, user.id, account_id)
            conn.execute(
                update(device_authorizations)
                .where(
                    device_authorizations.c.device_code_hash == device_hash,
                    device_authorizations.c.status == "pending",
                )
                .values(
                    status="approved" if approve else "denied",
                    user_id=user.id,
                    account_id=account_id if approve else None,
                )
            )

    # -- the CLI's side ----------------------------------------------------------------------

    def poll(self, client_id: str, device_code: str) -> IssuedToken:
        """The token once approved; otherwise an OAuthError saying what the CLI should do."""
        if client_id != CLIENT_ID:
            raise OAuthError("invalid_client", f"Unknown client_id; use {CLIENT_ID!r}.", 401)
        now = self.ctx.clock.now()
        error: OAuthError | None = None
        issued: IssuedToken | None = None
        with self.ctx.db.begin() as conn:
            row = conn.execute(
                select(device_authorizations).where(
                    device_authorizations.c.device_code_hash == hash_token(device_code)
                )
            ).first()
            if row is None or row.client_id != client_id:
                raise OAuthError("invalid_grant", "Unknown device_code.")
            if as_utc(row.expires_at) <= now:
                raise OAuthError("expired_token", "The code expired; run `mayfly login` again.")
            if row.status == "issued":
                raise OAuthError("invalid_grant", "This device_code was already exchanged.")
            too_soon = row.last_polled_at is not None and now - as_utc(
                row.last_polled_at
            ) < timedelta(seconds=row.interval)
            values: dict[str, object] = {"last_polled_at": now}
            if too_soon:
                values["interval"] = row.interval + 5
                error = OAuthError("slow_down", f"Poll at most every {row.interval + 5} s.")
            elif row.status == "pending":
                error = OAuthError("authorization_pending", "Waiting for a human to approve.")
            elif row.status == "denied":
                error = OAuthError("access_denied", "The request was denied in the browser.")
            else:
                values["status"] = "issued"
            won = conn.execute(
                update(device_authorizations)
                .where(
                    device_authorizations.c.device_code_hash == row.device_code_hash,
                    device_authorizations.c.status == row.status,
                )
                .values(**values)
            ).rowcount
            if error is None and won == 1:
                issued = self._issue(conn, row.user_id, row.account_id)
        if error is not None:
            raise error
        if issued is None:
            raise OAuthError("invalid_grant", "This device_code was already exchanged.")
        return issued

    def _issue(self, conn: Connection, user_id: str, account_id: str) -> IssuedToken:
        user_row = conn.execute(select(users).where(users.c.id == user_id)).one()
        user = User(user_row.id, user_row.email, user_row.created_at)
        info, token = self.user_tokens.create(
            user, account_id, self.TOKEN_NAME, via="device", conn=conn
        )
        name = conn.execute(select(accounts.c.name).where(accounts.c.id == account_id)).scalar_one()
        return IssuedToken(token, info.id, account_id, name, user.email)
