"""Workers KV for the API: namespaces per account, and their values with every call checked
against the caller's account first (the unchecked store beneath, for the data plane: kv_store.py)."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import (
    NamespaceNotFound,
    NamespaceTitleExists,
    ValidationError,
)
from mayfly.model import Account
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.core.owned import named_row
from mayfly.services.resources import quotas
from mayfly.services.resources.kv_store import (
    BULK_BATCH,
    BulkItem,
    Entry,
    KVStore,
    check_expiry_fields,
    check_key,
    prefix_successor,
)
from mayfly.storage.tables import kv_entries, kv_namespaces

# Defined in kv_store.py; the API and other services import them from here too.
__all__ = ["BulkItem", "Entry", "KVService", "check_expiry_fields", "check_key", "prefix_successor"]


def render_namespace(row: Any) -> dict[str, Any]:
    return {"id": row.id, "title": row.title, "supports_url_encoding": True}


class KVService:
    """Every value call checks that the namespace belongs to `account`, then uses `store`."""

    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx
        self.store = KVStore(ctx)

    def _now(self) -> int:
        return int(self.ctx.clock.now().timestamp())

    # -- namespaces --------------------------------------------------------------------------

    def create_namespace(self, account: Account, title: Any, actor: str) -> dict[str, Any]:
        if not isinstance(title, str) or not title.strip() or len(title) > 512:
            raise ValidationError("A KV namespace needs a title of 1-512 characters.")
        namespace_id = secrets.token_hex(16)
        try:
            with self.ctx.db.begin() as conn:
                quotas.require_room(
                    conn, self.ctx.settings, account.id, account.kind, quotas.KV_NAMESPACES
                )
                if named_row(conn, kv_namespaces.c.title, account.id, title) is not None:
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
            clash = named_row(conn, kv_namespaces.c.title, account.id, title)
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
            self.store.put_in(
                conn,
                account.id,
                namespace_id,
                BulkItem(key, value, metadata, expiration, expiration_ttl),
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
        rows = [self.store.row(account.id, namespace_id, item, now) for item in latest.values()]
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
        return self.store.get(namespace_id, key)

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
        self.store.delete(namespace_id, key)

    def delete_many(self, account: Account, namespace_id: str, keys: list[str]) -> None:
        """A bulk delete: every key or none (one transaction; a crash midway deletes nothing),
        a DELETE per BULK_BATCH keys. Absent keys are no error, as one by one."""
        limit = self.ctx.settings.max_kv_bulk_items
        if len(keys) > limit:
            raise ValidationError(f"A bulk delete takes at most {limit} keys; got {len(keys)}.")
        unique = sorted(set(keys))
        with self.ctx.db.begin() as conn:
            self._namespace(conn, account, namespace_id)
            for start in range(0, len(unique), BULK_BATCH):
                conn.execute(
                    delete(kv_entries).where(
                        kv_entries.c.namespace_id == namespace_id,
                        kv_entries.c.key.in_(unique[start : start + BULK_BATCH]),
                    )
                )

    def list_keys(
        self, account: Account, namespace_id: str, prefix: str, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        with self.ctx.db.read() as conn:
            self._namespace(conn, account, namespace_id)
        return self.store.list_keys(namespace_id, prefix, cursor, limit)
