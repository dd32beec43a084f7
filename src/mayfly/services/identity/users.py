"""People: sign-up with an e-mail address and an argon2-hashed password; log-in, throttled."""

from __future__ import annotations

import asyncio
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import Conflict, MayflyError, RateLimited, ValidationError
from mayfly.services.context import ServiceContext
from mayfly.services.core.ratelimit import GLOBAL, SlidingWindowLimiter
from mayfly.services.identity.passwords import PasswordPool
from mayfly.storage.tables import users

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_COMMON = """password passwords password1 password12 password123 password1234 passw0rd123
    1234567890 0123456789 12345678910 qwertyuiop qwertyuiop1 1q2w3e4r5t 1qaz2wsx3edc
    iloveyou123 letmein123 welcome123 administrator changeme123 trustno1234 football123
    abcdefghij abc1234567 sunshine123 princess123 superman123 baseball123 mayfly1234"""
COMMON_PASSWORDS = frozenset(_COMMON.split())
LOGIN_FAILED = "Wrong e-mail address or password."


class InvalidCredentials(MayflyError):
    """One message for an unknown e-mail address and a wrong password: no account probing."""

    code, status = 10401, 401


@dataclass(frozen=True)
class User:
    id: str
    email: str
    created_at: datetime


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    email = normalise_email(email)
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValidationError("Enter a valid e-mail address, like you@example.com.")
    return email


def check_password(password: str, email: str) -> None:
    """A weak password gets a message that says how to pick a better one."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"Choose a password of at least {MIN_PASSWORD} characters "
            "(a few unrelated words work well)."
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"Passwords are at most {MAX_PASSWORD} characters.")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 4:
        raise ValidationError("This password is too easy to guess; choose another.")
    if lowered in (email, email.split("@", 1)[0]):
        raise ValidationError("The password must not be your e-mail address.")


def _user(row: Any) -> User:
    return User(id=row.id, email=row.email, created_at=row.created_at)


class UserService:
    """Sign-up and log-in, with the limits a public sign-up form needs.

    Per client address (IPv6: its /64) and platform-wide: sign-ups an hour/minute, log-in attempts
    a minute. Failed log-ins lock out the (e-mail, address) pair and, at a higher count, the
    address, never the e-mail address itself: its owner can always log in from elsewhere.
    argon2 runs on a dedicated PasswordPool.
    """

    LOGIN_WINDOW = 15 * 60  # seconds failed log-ins are remembered

    def __init__(self, ctx: ServiceContext, hasher: PasswordHasher | None = None):
        self.ctx = ctx
        s = ctx.settings
        self.hasher = hasher or PasswordHasher()
        self.passwords = PasswordPool(self.hasher, s.password_hash_threads, s.password_hash_queue)
        self.signups = SlidingWindowLimiter(s.signups_per_hour, 3600, "sign-ups")
        self.signups_total = SlidingWindowLimiter(s.signups_per_minute_total, 60, "sign-ups")
        self.logins = SlidingWindowLimiter(s.logins_per_minute, 60, "log-ins")
        self.logins_total = SlidingWindowLimiter(s.logins_per_minute_total, 60, "log-ins")
        self.by_pair = SlidingWindowLimiter(
            s.login_failures_per_email, self.LOGIN_WINDOW, "failed log-ins"
        )
        self.by_client = SlidingWindowLimiter(
            s.login_failures_per_address, self.LOGIN_WINDOW, "failed log-ins"
        )
        self._dummy_hash: str | None = None

    @property
    def limiters(self) -> list[SlidingWindowLimiter]:
        return [
            self.signups,
            self.signups_total,
            self.logins,
            self.logins_total,
            self.by_pair,
            self.by_client,
        ]

    def sign_up(self, email: str, password: str) -> User:
        """A new user, hashed on the calling thread (administration and tests; the sign-up form
        uses register). Raises ValidationError (bad e-mail, weak password) or Conflict (taken)."""
        email = check_email(email)
        check_password(password, email)
        return self._insert(email, self.hasher.hash(password))

    async def register(self, email: str, password: str, client: str) -> User:
        """Sign-up from the web: validated, limited per address and platform-wide, hashed on the
        password pool. RateLimited past a limit or when the pool is full."""
        email = check_email(email)
        check_password(password, email)
        now = self.ctx.clock.now().timestamp()
        self.signups.hit(
            client, now, message="Too many sign-ups from this address; try again later."
        )
        self.signups_total.hit(
            GLOBAL, now, message="Too many sign-ups right now; try again in a minute."
        )
        if await asyncio.to_thread(self._taken, email):
            raise _taken()
        password_hash = await self.passwords.hash(password)
        return await asyncio.to_thread(self._insert, email, password_hash)

    async def log_in(self, email: str, password: str, client: str) -> User:
        """The user, or InvalidCredentials (one message), or RateLimited (too many attempts from
        this address, or repeated failures for this e-mail address from this address)."""
        email = normalise_email(email)[:254]
        now = self.ctx.clock.now().timestamp()
        pair = f"{email}|{client}"
        wait = max(self.by_pair.retry_after(pair, now), self.by_client.retry_after(client, now))
        if wait:
            minutes = math.ceil(wait / 60)
            raise RateLimited(
                f"Too many failed log-ins; try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}, or reset your password with the operator.",
                retry_after=wait,
            )
        self.logins.hit(client, now, message="Too many log-ins from this address; slow down.")
        self.logins_total.hit(GLOBAL, now, message="Too many log-ins right now; retry shortly.")
        row = await asyncio.to_thread(self._row, email)
        if row is None:
            await self._burn_time(password)
        elif await self.passwords.verify(row.password_hash, password):
            self.by_pair.reset(pair)
            if self.hasher.check_needs_rehash(row.password_hash):
                rehashed = await self.passwords.hash(password)
                await asyncio.to_thread(self._set_hash, row.id, rehashed)
            return _user(row)
        self.by_pair.record(pair, now)
        self.by_client.record(client, now)
        raise InvalidCredentials(LOGIN_FAILED)

    def get(self, user_id: str) -> User | None:
        with self.ctx.db.read() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return _user(row) if row else None

    def close(self) -> None:
        self.passwords.close()

    def _taken(self, email: str) -> bool:
        with self.ctx.db.read() as conn:
            return (
                conn.execute(select(users.c.id).where(users.c.email == email)).first() is not None
            )

    def _row(self, email: str) -> Any:
        with self.ctx.db.read() as conn:
            return conn.execute(select(users).where(users.c.email == email)).first()

    def _insert(self, email: str, password_hash: str) -> User:
        user_id = secrets.token_hex(16)
        now = self.ctx.clock.now()
        try:
            with self.ctx.db.begin() as conn:
                if conn.execute(select(users.c.id).where(users.c.email == email)).first():
                    raise _taken()
                conn.execute(
                    insert(users).values(
                        id=user_id, email=email, password_hash=password_hash, created_at=now
                    )
                )
        except IntegrityError as exc:
            raise _taken() from exc
        return User(id=user_id, email=email, created_at=now)

    def _set_hash(self, user_id: str, password_hash: str) -> None:
        with self.ctx.db.begin() as conn:
            conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def _burn_time(self, password: str) -> None:
        """As slow as a real verification, so that timing does not tell which e-mails exist."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.passwords.hash(secrets.token_urlsafe(16))
        await self.passwords.verify(self._dummy_hash, password)


def _taken() -> Conflict:
    return Conflict("An account with this e-mail address already exists: log in instead.")
