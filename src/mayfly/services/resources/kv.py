"""Workers KV: namespaces per account, values with metadata and expiration.

Expired entries read as missing at once and are deleted lazily (on read, write and by the reaper).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import (
    KeyNotFound,
    NamespaceNotFound,
    NamespaceTitleExists,
    ValidationError,
)
from mayfly.model import Account
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
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


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("The cursor is not one this API returned.") from exc


class KVService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def _now(self) -> int:
        return int(self.ctx.clock.now().timestamp())

    # -- namespaces --------------------------------------------------------------------------

    def create_namespace(self, account: Account, title: Any, actor: str) -> dict[str, Any]:
        if not isinstance(title, str) or not title.strip() or len(title) > 512:
            raise ValidationError("A KV namespace needs a title of 1-512 characters.")
        namespace_id = secrets.token_hex(16)
        try:
            with self.ctx.db.begin() as conn:
                quotas.require_count(
                    account.kind,
                    "KV namespaces",
                    quotas.count_namespaces(conn, account.id),
                    1,
                    quotas.quota_for(self.ctx.settings, account.kind).kv_namespaces,
                    "Delete a namespace you no longer need (`wrangler kv namespace delete`).",
                )
                if self._by_title(conn, account.id, title) is not None:
                    raise NamespaceTitleExists(
                        f"A KV namespace with the title {title!r} already exists."
                    )
                conn.execute(
                    insert(kv_namespaces).values(
                        id=namespace_id,
                        account_id=account.id,
                        title=title,
                        created_at=self.ctx.clock.now(),
                    )
                )
                audit.record(
                    conn,
                    account.id,
                    "kv.namespace_created",
                    actor,
                    self.ctx.clock.now(),
                    namespace_id=namespace_id,
                )
        except IntegrityError as exc:
            raise NamespaceTitleExists(
                f"A KV namespace with the title {title!r} already exists."
            ) from exc
        return {"id": namespace_id, "title": title, "supports_url_encoding": True}

    @staticmethod
    def _by_title(conn: Connection, account_id: str, title: str) -> Any:
        return conn.execute(
            select(kv_namespaces).where(
                kv_namespaces.c.account_id == account_id, kv_namespaces.c.title == title
            )
        ).first()

    def list_namespaces(self, account: Account, order: str, direction: str) -> list[dict[str, Any]]:
        column = kv_namespaces.c.id if order == "id" else kv_namespaces.c.title
        ordering = column.desc() if direction == "desc" else column.asc()
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(kv_namespaces)
                .where(kv_namespaces.c.account_id == account.id)
                .order_by(ordering)
            ).all()
        return [render_namespace(r) for r in rows]

    def _namespace(self, conn: Connection, account: Account, namespace_id: str) -> Any:
        row = conn.execute(
            select(kv_namespaces).where(
                kv_namespaces.c.id == namespace_id, kv_namespaces.c.account_id == account.id
            )
        ).first()
        if row is None:
            raise NamespaceNotFound(f"KV namespace {namespace_id!r} not found in this account.")
        return row

    def get_namespace(self, account: Account, namespace_id: str) -> dict[str, Any]:
        with self.ctx.db.read() as conn:
            return render_namespace(self._namespace(conn, account, namespace_id))

    def rename_namespace(self, account: Account, namespace_id: str, title: Any) -> dict[str, Any]:
        if not isinstance(title, str) or not title.strip() or len(title) > 512:
            raise ValidationError("A KV namespace needs a title of 1-512 characters.")
        with self.ctx.db.begin() as conn:
            self._namespace(conn, account, namespace_id)
            clash = self._by_title(conn, account.id, title)
            if clash is not None and clash.id != namespace_id:
                raise NamespaceTitleExists(
                    f"A KV namespace with the title {title!r} already exists."
                )
            conn.execute(
                update(kv_namespaces).where(kv_namespaces.c.id == namespace_id).values(title=title)
            )
        return {"id": namespace_id, "title": title, "supports_url_encoding": True}

    def delete_namespace(self, account: Account, namespace_id: str, actor: str) -> None:
        with self.ctx.db.begin() as conn:
            self._namespace(conn, account, namespace_id)
            conn.execute(delete(kv_entries).where(kv_entries.c.namespace_id == namespace_id))
            conn.execute(delete(kv_namespaces).where(kv_namespaces.c.id == namespace_id))
            audit.record(
                conn,
                account.id,
                "kv.namespace_deleted",
                actor,
                self.ctx.clock.now(),
                namespace_id=namespace_id,
            )

    # -- values (account-scoped API) ---------------------------------------------------------

    def put(
        self,
        account: Account,
        namespace_id: str,
        key: str,
        value: bytes,
        *,
        metadata: Any = None,
        expiration: int | None = None,
        expiration_ttl: int | None = None,
    ) -> None:
        with self.ctx.db.begin() as conn:
            self._namespace(conn, account, namespace_id)
            self._put(
                conn, account.id, namespace_id, key, value, metadata, expiration, expiration_ttl
            )

    def put_many(self, account: Account, namespace_id: str, items: list[BulkItem]) -> None:
        """A bulk write: every item or none (one transaction; a crash midway writes nothing).

        Every item is checked before the transaction; inside it, the replaced entries go in a
        few batched DELETEs and the new ones in batched INSERTs, so the write lock is held for
        a few statements per 500 keys rather than two per key.
        """
        limit = self.ctx.settings.max_kv_bulk_items
        if len(items) > limit:
            raise ValidationError(f"A bulk write takes at most {limit} keys; got {len(items)}.")
        now = self._now()
        latest = {item.key: item for item in items}  # a key given twice: the last one wins
        rows = [
            self._row(
                account.id,
                namespace_id,
                item.key,
                item.value,
                item.metadata,
                item.expiration,
                item.expiration_ttl,
                now,
            )
            for item in latest.values()
        ]
        with self.ctx.db.begin() as conn:
            self._namespace(conn, account, namespace_id)
            budget = quotas.KVBudget(conn, self.ctx.settings, account.id, now)
            for start in range(0, len(rows), BULK_BATCH):
                batch = rows[start : start + BULK_BATCH]
                deleted = conn.execute(
                    delete(kv_entries)
                    .where(
                        kv_entries.c.namespace_id == namespace_id,
                        kv_entries.c.key.in_([row["key"] for row in batch]),
                    )
                    .returning(kv_entries.c.key, quotas.kv_size_column())
                )
                replaced: dict[str, int] = {key: int(size) for key, size in deleted}
                for row in batch:
                    budget.admit(
                        quotas.kv_entry_bytes(row["key"], row["value"], row["metadata"]),
                        replaced.get(row["key"]),
                    )
                conn.execute(insert(kv_entries), batch)

    def get(self, account: Account, namespace_id: str, key: str) -> Entry:
        with self.ctx.db.read() as conn:
            self._namespace(conn, account, namespace_id)
        return self.get_entry(namespace_id, key)

    def get_many(self, account: Account, namespace_id: str, keys: list[str]) -> dict[str, Entry]:
        """The live entries among `keys` (one statement; absent and expired keys are left out)."""
        now = self._now()
        with self.ctx.db.read() as conn:
            self._namespace(conn, account, namespace_id)
            rows = conn.execute(
                select(kv_entries).where(
                    kv_entries.c.namespace_id == namespace_id, kv_entries.c.key.in_(keys)
                )
            ).all()
        return {
            r.key: Entry(bytes(r.value), r.metadata, r.expiration)
            for r in rows
            if r.expiration is None or r.expiration > now
        }

    def delete_key(self, account: Account, namespace_id: str, key: str) -> None:
        with self.ctx.db.begin() as conn:
            self._namespace(conn, account, namespace_id)
        self.delete_entry(namespace_id, key)

    def list_keys(
        self, account: Account, namespace_id: str, prefix: str, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        with self.ctx.db.read() as conn:
            self._namespace(conn, account, namespace_id)
        return self.list_entries(namespace_id, prefix, cursor, limit)

    # -- values (by namespace id: the data plane's view, already scoped by the platform) -----

    def _put(
        self,
        conn: Connection,
        account_id: str,
        namespace_id: str,
        key: str,
        value: bytes,
        metadata: Any,
        expiration: int | None,
        expiration_ttl: int | None,
        budget: quotas.KVBudget | None = None,
    ) -> None:
        now = self._now()
        row = self._row(
            account_id, namespace_id, key, value, metadata, expiration, expiration_ttl, now
        )
        if budget is None:
            budget = quotas.KVBudget(conn, self.ctx.settings, account_id, now)
        # The entry it replaces is deleted first and its size read back in the same statement;
        # a refusal then rolls the deletion back with the transaction.
        replaced = conn.execute(
            delete(kv_entries)
            .where(kv_entries.c.namespace_id == namespace_id, kv_entries.c.key == key)
            .returning(quotas.kv_size_column())
        ).scalar_one_or_none()
        budget.admit(
            quotas.kv_entry_bytes(key, value, metadata),
            None if replaced is None else int(replaced),
        )
        conn.execute(insert(kv_entries).values(**row))

    def _row(
        self,
        account_id: str,
        namespace_id: str,
        key: str,
        value: bytes,
        metadata: Any,
        expiration: int | None,
        expiration_ttl: int | None,
        now: int,
    ) -> dict[str, Any]:
        """A checked entry, ready to insert (its expiration absolute)."""
        check_key(key)
        check_expiry_fields(expiration, expiration_ttl)
        if len(value) > self.ctx.settings.max_kv_value_bytes:
            raise ValidationError(
                f"KV values are at most {self.ctx.settings.max_kv_value_bytes} bytes."
            )
        if metadata is not None and len(json.dumps(metadata).encode()) > MAX_METADATA_BYTES:
            raise ValidationError(f"KV metadata is at most {MAX_METADATA_BYTES} bytes of JSON.")
        if expiration_ttl is not None:
            if expiration_ttl < MIN_EXPIRATION_TTL:
                raise ValidationError(
                    f"expiration_ttl must be at least {MIN_EXPIRATION_TTL} seconds."
                )
            expiration = now + expiration_ttl
        elif expiration is not None and expiration < now + MIN_EXPIRATION_TTL:
            raise ValidationError(
                f"expiration must be at least {MIN_EXPIRATION_TTL} seconds in the future."
            )
        return {
            "namespace_id": namespace_id,
            "key": key,
            "account_id": account_id,
            "value": value,
            "metadata": metadata,
            "expiration": expiration,
        }

    def put_entry(
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
            self._put(
                conn, account_id, namespace_id, key, value, metadata, expiration, expiration_ttl
            )

    def get_entry(self, namespace_id: str, key: str) -> Entry:
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(kv_entries).where(
                    kv_entries.c.namespace_id == namespace_id, kv_entries.c.key == key
                )
            ).first()
        if row is None or (row.expiration is not None and row.expiration <= self._now()):
            raise KeyNotFound(f"KV key {key!r} not found.")
        return Entry(bytes(row.value), row.metadata, row.expiration)

    def delete_entry(self, namespace_id: str, key: str) -> None:
        with self.ctx.db.begin() as conn:
            conn.execute(
                delete(kv_entries).where(
                    kv_entries.c.namespace_id == namespace_id, kv_entries.c.key == key
                )
            )

    def list_entries(
        self, namespace_id: str, prefix: str, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        """Keys in order, from after the cursor; returns the next cursor ('' on the last page)."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000.")
        after = _decode_cursor(cursor) if cursor else None
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
        return items, _encode_cursor(rows[-1].key) if more and rows else ""
