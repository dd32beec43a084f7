"""KV values by namespace id with no account check: the data plane's view (api/internal.py), whose
namespace ids the platform took from the calling Worker's own bindings. The API's view, which
checks that the namespace is the caller's account's first, is KVService (kv.py) over this store.

Expired entries read as missing at once; they are deleted when their key is written again and by
the reaper (lifecycle.py), never on read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from mayfly.errors import (
    KeyNotFound,
    NamespaceNotFound,
    ValidationError,
)
from mayfly.services.context import ServiceContext
from mayfly.services.core.cursors import decode_cursor, encode_cursor
from mayfly.services.resources import quotas
from mayfly.storage.tables import kv_entries, kv_namespaces

MAX_KEY_BYTES = 512
MAX_METADATA_BYTES = 1024
MIN_EXPIRATION_TTL = 60
# 9999-12-31T23:59:59Z: a later expiration is no date at all (and 10^30 overflows every column).
MAX_EXPIRATION = 253_402_300_799
BULK_BATCH = 500  # keys per DELETE … IN and per INSERT of a bulk write


@dataclass(frozen=True)
class Entry:
    value: bytes
    metadata: Any
    expiration: int | None


def check_key(key: str) -> None:
    if key in ("", ".", ".."):
        raise ValidationError(f"KV key {key!r} is not allowed.")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValidationError(f"KV keys are at most {MAX_KEY_BYTES} bytes.")


def check_expiry_fields(expiration: Any, expiration_ttl: Any) -> None:
    """Whole numbers of seconds within range (booleans, strings, lists and 10^30 are not)."""
    for name, value in (("expiration", expiration), ("expiration_ttl", expiration_ttl)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{name} must be a whole number of seconds.")
        if not 0 <= value <= MAX_EXPIRATION:
            raise ValidationError(f"{name} must be between 0 and {MAX_EXPIRATION}.")


@dataclass(frozen=True)
class BulkItem:
    """An entry to write, as a put or one item of a bulk write gives it (expiry not yet checked)."""

    key: str
    value: bytes
    metadata: Any = None
    expiration: int | None = None
    expiration_ttl: int | None = None


def render_namespace(row: Any) -> dict[str, Any]:
    return {"id": row.id, "title": row.title, "supports_url_encoding": True}


MAX_CODE_POINT = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (in UTF-8 byte order,
    which is code point order), or None when there is none (a prefix of only U+10FFFF)."""
    stripped = prefix.rstrip(chr(MAX_CODE_POINT))
    if not stripped:
        return None
    last = ord(stripped[-1]) + 1
    if last in SURROGATES:
        last = SURROGATES.stop
    return stripped[:-1] + chr(last)


class KVStore:
    """Values by namespace id; nothing here checks an account (see the module's docstring)."""

    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def _now(self) -> int:
        return int(self.ctx.clock.now().timestamp())

    def put_in(
        self,
        conn: Connection,
        account_id: str,
        namespace_id: str,
        item: BulkItem,
        budget: quotas.KVBudget | None = None,
    ) -> None:
        now = self._now()
        row = self.row(account_id, namespace_id, item, now)
        if budget is None:
            budget = quotas.KVBudget(conn, self.ctx.settings, account_id, now)
        # The entry it replaces is deleted first and its size read back in the same statement;
        # a refusal then rolls the deletion back with the transaction.
        replaced = conn.execute(
            delete(kv_entries)
            .where(kv_entries.c.namespace_id == namespace_id, kv_entries.c.key == item.key)
            .returning(quotas.kv_size_column())
        ).scalar_one_or_none()
        budget.admit(
            quotas.kv_entry_bytes(item.key, item.value, item.metadata),
            None if replaced is None else int(replaced),
        )
        conn.execute(insert(kv_entries).values(**row))

    def row(self, account_id: str, namespace_id: str, item: BulkItem, now: int) -> dict[str, Any]:
        """A checked entry, ready to insert (its expiration absolute)."""
        check_key(item.key)
        check_expiry_fields(item.expiration, item.expiration_ttl)
        if len(item.value) > self.ctx.settings.max_kv_value_bytes:
            raise ValidationError(
                f"KV values are at most {self.ctx.settings.max_kv_value_bytes} bytes."
            )
        if (
            item.metadata is not None
            and len(json.dumps(item.metadata).encode()) > MAX_METADATA_BYTES
        ):
            raise ValidationError(f"KV metadata is at most {MAX_METADATA_BYTES} bytes of JSON.")
        expiration = item.expiration
        if item.expiration_ttl is not None:
            if item.expiration_ttl < MIN_EXPIRATION_TTL:
                raise ValidationError(
                    f"expiration_ttl must be at least {MIN_EXPIRATION_TTL} seconds."
                )
            expiration = now + item.expiration_ttl
        elif expiration is not None and expiration < now + MIN_EXPIRATION_TTL:
            raise ValidationError(
                f"expiration must be at least {MIN_EXPIRATION_TTL} seconds in the future."
            )
        return {
            "namespace_id": namespace_id,
            "key": item.key,
            "account_id": account_id,
            "value": item.value,
            "metadata": item.metadata,
            "expiration": expiration,
        }

    def put(
        self,
        namespace_id: str,
        key: str,
        value: bytes,
        *,
        metadata: Any = None,
        expiration: int | None = None,
        expiration_ttl: int | None = None,
    ) -> None:
        with self.ctx.db.begin() as conn:
            account_id = conn.execute(
                select(kv_namespaces.c.account_id).where(kv_namespaces.c.id == namespace_id)
            ).scalar_one_or_none()
            if account_id is None:
                raise NamespaceNotFound(f"KV namespace {namespace_id!r} not found.")
            self.put_in(
                conn,
                account_id,
                namespace_id,
                BulkItem(key, value, metadata, expiration, expiration_ttl),
            )

    def get(self, namespace_id: str, key: str) -> Entry:
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(kv_entries).where(
                    kv_entries.c.namespace_id == namespace_id, kv_entries.c.key == key
                )
            ).first()
        if row is None or (row.expiration is not None and row.expiration <= self._now()):
            raise KeyNotFound(f"KV key {key!r} not found.")
        return Entry(bytes(row.value), row.metadata, row.expiration)

    def delete(self, namespace_id: str, key: str) -> None:
        with self.ctx.db.begin() as conn:
            conn.execute(
                delete(kv_entries).where(
                    kv_entries.c.namespace_id == namespace_id, kv_entries.c.key == key
                )
            )

    def list_keys(
        self, namespace_id: str, prefix: str, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        """Keys in order, from after the cursor; returns the next cursor ('' on the last page)."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000.")
        after = decode_cursor(cursor) if cursor else None
        now = self._now()
        query = (
            select(kv_entries.c.key, kv_entries.c.metadata, kv_entries.c.expiration)
            .where(kv_entries.c.namespace_id == namespace_id)
            .where((kv_entries.c.expiration.is_(None)) | (kv_entries.c.expiration > now))
            .order_by(kv_entries.c.key)
            .limit(limit + 1)
        )
        if prefix:
            # A byte range (keys compare as bytes: SQLite's BINARY, COLLATE "C" on PostgreSQL),
            # which the primary key serves; LIKE is case-insensitive on SQLite.
            query = query.where(kv_entries.c.key >= prefix)
            upper = prefix_successor(prefix)
            if upper is not None:
                query = query.where(kv_entries.c.key < upper)
        if after is not None:
            query = query.where(kv_entries.c.key > after)
        with self.ctx.db.read() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = []
        for row in rows:
            item: dict[str, Any] = {"name": row.key}
            if row.expiration is not None:
                item["expiration"] = row.expiration
            if row.metadata is not None:
                item["metadata"] = row.metadata
            items.append(item)
        return items, encode_cursor(rows[-1].key) if more and rows else ""
