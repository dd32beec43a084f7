"""Admission of R2 object bodies (a PUT, a multipart part), which are held whole in memory.

Before a byte is read, the declared Content-Length (when there is one) is checked against
max_r2_object_bytes and the account's remaining stored-bytes quota (10440). While bodies are read,
`UploadGate` bounds them: at most `r2_uploads_per_account` bodies over SMALL_BODY (1 MiB) in
flight per account, and at most `r2_upload_memory_bytes` held server-wide (counted by declared
size, or by bytes received when no length was declared); past either it answers 10429 (HTTP 429)
with Retry-After at once, never waiting on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import select

from mayfly.errors import BucketNotFound, PayloadTooLarge, RateLimited, ValidationError
from mayfly.services.context import ServiceContext
from mayfly.services.resources import quotas
from mayfly.storage.resource_tables import r2_buckets, r2_objects, r2_parts

__all__ = ["UploadGate", "declared_length", "receive"]

RETRY_AFTER = 1
# Bodies up to this size take no per-account slot (a Worker's parallel small puts go through);
# the server-wide budget still counts them.
SMALL_BODY = 1024 * 1024


def declared_length(value: str | None) -> int | None:
    """The Content-Length header as a number (None when absent)."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise ValidationError("Content-Length must be a whole number of bytes.")
    return int(value)


def precheck(
    ctx: ServiceContext,
    bucket_id: str,
    declared: int | None,
    *,
    key: str | None = None,
    upload_id: str | None = None,
    part_number: int | None = None,
) -> str:
    """The bucket's account id, after refusing a declared size over max_r2_object_bytes or over
    what the account may still store (counting what the object or part replaces as freed)."""
    limit = ctx.settings.max_r2_object_bytes
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"R2 objects are at most {limit} bytes (max_r2_object_bytes).")
    with ctx.db.read() as conn:
        account_id = conn.execute(
            select(r2_buckets.c.account_id).where(r2_buckets.c.id == bucket_id)
        ).scalar_one_or_none()
        if account_id is None:
            raise BucketNotFound("The bucket does not exist.")
        if not declared:
            return str(account_id)
        if upload_id is not None:
            old = conn.execute(
                select(r2_parts.c.size).where(
                    r2_parts.c.upload_id == upload_id, r2_parts.c.part_number == part_number
                )
            ).scalar_one_or_none()
        else:
            old = conn.execute(
                select(r2_objects.c.size).where(
                    r2_objects.c.bucket_id == bucket_id, r2_objects.c.key == key
                )
            ).scalar_one_or_none()
        quotas.require_bytes(
            conn,
            ctx.settings,
            str(account_id),
            quotas.account_kind(conn, str(account_id)),
            declared,
            int(ctx.clock.now().timestamp()),
            freeing=int(old or 0),
        )
    return str(account_id)


@dataclass
class UploadGate:
    """Object bodies held in memory now: per account (count of those over SMALL_BODY) and in
    all (bytes)."""

    per_account: int
    budget: int
    held: int = 0
    accounts: dict[str, int] = field(default_factory=dict)

    def admit(self, account_id: str, declared: int | None) -> Reservation:
        reservation = Reservation(self, account_id)
        reservation.grow(declared or 0)
        return reservation


@dataclass
class Reservation:
    gate: UploadGate
    account_id: str
    size: int = 0
    slot: bool = False  # counted in the account's uploads at once
    released: bool = False

    def grow(self, size: int) -> None:
        """Hold `size` bytes in all (no-op while within what is already held), and one of the
        account's slots once the body is over SMALL_BODY."""
        extra = size - self.size
        if extra <= 0:
            return
        gate = self.gate
        needs_slot = size > SMALL_BODY and not self.slot
        if needs_slot and gate.accounts.get(self.account_id, 0) >= gate.per_account:
            raise RateLimited(
                f"This account already uploads {gate.per_account} R2 objects or parts "
                "at once (r2_uploads_per_account); retry when one has finished.",
                retry_after=RETRY_AFTER,
            )
        if gate.held + extra > gate.budget:
            raise RateLimited(
                "The server holds as many R2 upload bodies as it may "
                "(r2_upload_memory_bytes); retry shortly.",
                retry_after=RETRY_AFTER,
            )
        if needs_slot:
            self.slot = True
            gate.accounts[self.account_id] = gate.accounts.get(self.account_id, 0) + 1
        gate.held += extra
        self.size = size

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.gate.held -= self.size
        if not self.slot:
            return
        left = self.gate.accounts.get(self.account_id, 1) - 1
        if left > 0:
            self.gate.accounts[self.account_id] = left
        else:
            self.gate.accounts.pop(self.account_id, None)


async def read_body(chunks: AsyncIterator[bytes], limit: int, reservation: Reservation) -> bytes:
    """The body, refused past `limit` or past the server's budget as it arrives; joined once."""
    parts: list[bytes] = []
    received = 0
    async for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"R2 objects are at most {limit} bytes (max_r2_object_bytes).")
        reservation.grow(received)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


@asynccontextmanager
async def receive(
    ctx: ServiceContext,
    gate: UploadGate,
    chunks: AsyncIterator[bytes],
    content_length: str | None,
    bucket_id: str,
    *,
    key: str | None = None,
    upload_id: str | None = None,
    part_number: int | None = None,
) -> AsyncIterator[bytes]:
    """An object body, checked before it is read and held in the gate until the block ends (the
    store that follows keeps it in memory too)."""
    declared = declared_length(content_length)
    account_id = await asyncio.to_thread(
        precheck, ctx, bucket_id, declared, key=key, upload_id=upload_id, part_number=part_number
    )
    reservation = gate.admit(account_id, declared)
    try:
        yield await read_body(chunks, ctx.settings.max_r2_object_bytes, reservation)
    finally:
        reservation.release()
