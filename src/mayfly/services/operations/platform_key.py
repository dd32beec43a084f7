"""Every replica of one installation must use the same platform key: secrets encrypted through one
replica are decrypted by another, sessions signed by one are checked by another. The key's
fingerprint is stored in the database at first start; a start with another key is refused."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from mayfly.storage.database import Database
from mayfly.storage.tables import platform_meta

FINGERPRINT = "key_fingerprint"


class PlatformKeyError(RuntimeError):
    """The platform key is missing or is not the one this database was set up with."""


def fingerprint(key: bytes) -> str:
    """Names the key without revealing it (an HMAC under the key itself, truncated)."""
    return hmac.new(key, b"mayfly-key-fingerprint", hashlib.sha256).hexdigest()[:32]


def require_shared_key(db: Database, secret_key: str) -> None:
    """A shared database (PostgreSQL) is shared by replicas: none may invent its own key."""
    if not db.is_sqlite and not secret_key:
        raise PlatformKeyError(
            "the database is PostgreSQL, which replicas share, so the platform key must be set: "
            "give every replica the same --secret-key (or MAYFLY_SECRET_KEY)"
        )


def check_fingerprint(db: Database, key: bytes) -> None:
    """Record the key's fingerprint on first start; refuse any other key afterwards."""
    mine = fingerprint(key)
    with db.read() as conn:
        stored = conn.execute(
            select(platform_meta.c.value).where(platform_meta.c.name == FINGERPRINT)
        ).scalar_one_or_none()
    if stored is None:
        try:
            with db.begin() as conn:
                conn.execute(insert(platform_meta).values(name=FINGERPRINT, value=mine))
            return
        except IntegrityError:  # another replica recorded its key first
            with db.read() as conn:
                stored = conn.execute(
                    select(platform_meta.c.value).where(platform_meta.c.name == FINGERPRINT)
                ).scalar_one()
    if not hmac.compare_digest(stored, mine):
        raise PlatformKeyError(
            f"this platform key (fingerprint {mine}) is not the one this database was set up "
            f"with (fingerprint {stored}): secrets and sessions made with that key could not be "
            "read. Start with the same --secret-key / MAYFLY_SECRET_KEY as the other replicas "
            "(with SQLite: the data dir's secret.key) or use another database"
        )
