"""People: sign-up with an e-mail address and an argon2-hashed password; log-in, throttled."""

from __future__ import annotations

import math
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import Conflict, MayflyError, RateLimited, ValidationError
from mayfly.services.context import ServiceContext
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


class FailureThrottle:
    """Counts failures per key in a sliding window; past the limit, the key waits.

    In memory, per control plane: with N replicas an attacker gets at most N times the limit.
    """

    def __init__(self, limit: int, window_seconds: float):
        self.limit = limit
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        hits = self._failures.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def retry_after(self, key: str, now: float) -> int:
        """Seconds until the key may try again (0: now)."""
        with self._lock:
            hits = self._trim(key, now)
            if len(hits) < self.limit:
                return 0
            return max(1, math.ceil(hits[0] + self.window - now))

    def fail(self, key: str, now: float) -> None:
        with self._lock:
            self._trim(key, now).append(now)
            if len(self._failures) > 100_000:
                for stale in [k for k, v in self._failures.items() if not v]:
                    del self._failures[stale]

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def _user(row: Any) -> User:
    return User(id=row.id, email=row.email, created_at=row.created_at)


class UserService:
    # Failed log-ins allowed per e-mail address and per client address in LOGIN_WINDOW seconds.
    FAILURES_PER_EMAIL = 5
    FAILURES_PER_CLIENT = 30
    LOGIN_WINDOW = 15 * 60

    def __init__(self, ctx: ServiceContext, hasher: PasswordHasher | None = None):
        self.ctx = ctx
        self.hasher = hasher or PasswordHasher()
        self.by_email = FailureThrottle(self.FAILURES_PER_EMAIL, self.LOGIN_WINDOW)
        self.by_client = FailureThrottle(self.FAILURES_PER_CLIENT, self.LOGIN_WINDOW)
        self._dummy_hash: str | None = None

    def sign_up(self, email: str, password: str) -> User:
        """A new user; raises ValidationError (bad e-mail, weak password) or Conflict (taken)."""
        email = check_email(email)
        check_password(password, email)
        password_hash = self.hasher.hash(password)
        user_id = secrets.token_hex(16)
        now = self.ctx.clock.now()
        taken = Conflict("An account with this e-mail address already exists: log in instead.")
        try:
            with self.ctx.db.begin() as conn:
                if conn.execute(select(users.c.id).where(users.c.email == email)).first():
                    raise taken
                conn.execute(
                    insert(users).values(
                        id=user_id, email=email, password_hash=password_hash, created_at=now
                    )
                )
        except IntegrityError as exc:
            raise taken from exc
        return User(id=user_id, email=email, created_at=now)

    def log_in(self, email: str, password: str, client: str) -> User:
        """The user, or InvalidCredentials (one message), or RateLimited after repeated failures."""
        email = normalise_email(email)
        now = self.ctx.clock.now().timestamp()
        wait = max(self.by_email.retry_after(email, now), self.by_client.retry_after(client, now))
        if wait:
            minutes = math.ceil(wait / 60)
            raise RateLimited(
                f"Too many failed log-ins; try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}, or reset your password with the operator.",
                retry_after=wait,
            )
        with self.ctx.db.read() as conn:
            row = conn.execute(select(users).where(users.c.email == email)).first()
        if row is None:
            self._burn_time(password)
        elif self._verify(row.password_hash, password):
            self.by_email.reset(email)
            if self.hasher.check_needs_rehash(row.password_hash):
                with self.ctx.db.begin() as conn:
                    conn.execute(
                        update(users)
                        .where(users.c.id == row.id)
                        .values(password_hash=self.hasher.hash(password))
                    )
            return _user(row)
        self.by_email.fail(email, now)
        self.by_client.fail(client, now)
        raise InvalidCredentials(LOGIN_FAILED)

    def get(self, user_id: str) -> User | None:
        with self.ctx.db.read() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return _user(row) if row else None

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _burn_time(self, password: str) -> None:
        """As slow as a real verification, so that timing does not tell which e-mails exist."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self._verify(self._dummy_hash, password)
