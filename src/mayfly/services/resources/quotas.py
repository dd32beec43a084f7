"""Per-account quotas: what an account may store, and what it stores now.

Limits come from settings, lower for temporary accounts than for permanent ones. Usage is never
counted by reading blobs: KV from the kv_usage row that triggers on kv_entries keep (migration
0007), the rest by SQL aggregates over rows found by indexed account columns. Stored bytes are
summed by kind in one place, `BYTE_COUNTERS`: a new kind of storage adds one counter there.
Every write path asks before it writes; at the limit it answers 10440 (HTTP 413) saying which quota,
the usage, the limit and how to free space.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Select, Table, Text, cast, func, select

from mayfly.errors import QuotaExceeded
from mayfly.model import AccountKind
from mayfly.settings import Settings
from mayfly.storage.resource_tables import d1_databases, r2_buckets, r2_objects, r2_parts
from mayfly.storage.tables import (
    accounts,
    asset_files,
    blobs,
    kv_entries,
    kv_namespaces,
    kv_usage,
    modules,
    scripts,
    versions,
)


@dataclass(frozen=True)
class Quota:
    bytes: int
    versions_per_worker: int
    workers: int
    kv_namespaces: int
    kv_keys: int
    asset_files: int
    d1_databases: int
    r2_buckets: int


def quota_for(settings: Settings, kind: AccountKind) -> Quota:
    if kind == "temporary":
        return Quota(
            bytes=settings.quota_bytes_temporary,
            versions_per_worker=settings.quota_versions_temporary,
            workers=settings.quota_workers_temporary,
            kv_namespaces=settings.quota_kv_namespaces_temporary,
            kv_keys=settings.quota_kv_keys_temporary,
            asset_files=settings.quota_asset_files_temporary,
            d1_databases=settings.quota_d1_databases_temporary,
            r2_buckets=settings.quota_r2_buckets_temporary,
        )
    return Quota(
        bytes=settings.quota_bytes_permanent,
        versions_per_worker=settings.quota_versions_permanent,
        workers=settings.quota_workers_permanent,
        kv_namespaces=settings.quota_kv_namespaces_permanent,
        kv_keys=settings.quota_kv_keys_permanent,
        asset_files=settings.quota_asset_files_permanent,
        d1_databases=settings.quota_d1_databases_permanent,
        r2_buckets=settings.quota_r2_buckets_permanent,
    )


def account_kind(conn: Connection, account_id: str) -> AccountKind:
    kind = conn.execute(
        select(accounts.c.kind).where(accounts.c.id == account_id)
    ).scalar_one_or_none()
    return "permanent" if kind == "permanent" else "temporary"


# -- usage -----------------------------------------------------------------------------------------


def code_bytes(conn: Connection, account_id: str, now: int) -> int:
    """Distinct module blobs of the account's versions (versions sharing code count it once)."""
    total = conn.execute(
        select(func.coalesce(func.sum(blobs.c.size), 0)).where(
            blobs.c.account_id == account_id, blobs.c.sha256.in_(_code_blobs(account_id))
        )
    ).scalar_one()
    return int(total)


def _code_blobs(account_id: str) -> Select[tuple[str]]:
    return (
        select(modules.c.blob_sha256)
        .join(versions, versions.c.id == modules.c.version_id)
        .where(versions.c.account_id == account_id)
    )


def new_code_bytes(conn: Connection, account_id: str, sizes: dict[str, int]) -> int:
    """What a version with these modules ({blob digest: size}, hashed before the transaction)
    adds to `code_bytes`: the modules no version of the account has yet."""
    shared = set(
        conn.execute(
            select(blobs.c.sha256).where(
                blobs.c.account_id == account_id,
                blobs.c.sha256.in_(list(sizes)),
                blobs.c.sha256.in_(_code_blobs(account_id)),
            )
        ).scalars()
    )
    return sum(size for digest, size in sizes.items() if digest not in shared)


def kv_size_column() -> ColumnElement[int]:
    # length() of a blob is read from its header: no value is loaded.
    return (
        func.length(kv_entries.c.key)
        + func.length(kv_entries.c.value)
        + func.coalesce(func.length(cast(kv_entries.c.metadata, Text)), 0)
    )


def kv_entry_bytes(key: str, value: bytes, metadata: Any) -> int:
    """What `kv_bytes` will count for this entry once stored."""
    # No metadata is stored as JSON null: "null", 4 characters, as the SQL side counts it.
    return len(key) + len(value) + len(json.dumps(metadata))


def kv_bytes(conn: Connection, account_id: str, now: int) -> int:
    """Keys, values and metadata of the account's entries, as the kv_usage triggers count them
    (expired entries until a read, a write or the reaper deletes them)."""
    total = conn.execute(
        select(kv_usage.c.stored_bytes).where(kv_usage.c.account_id == account_id)
    ).scalar_one_or_none()
    return int(total or 0)


def _sum_owned(conn: Connection, column: Column[int], account_id: str) -> int:
    """The sum of `column` over the rows of its table that the account holds (0: none)."""
    owner = column.table.c.account_id
    return int(
        conn.execute(
            select(func.coalesce(func.sum(column), 0)).where(owner == account_id)
        ).scalar_one()
    )


def asset_bytes(conn: Connection, account_id: str, now: int) -> int:
    return _sum_owned(conn, asset_files.c.size, account_id)


def d1_bytes(conn: Connection, account_id: str, now: int) -> int:
    """The account's D1 databases: each SQLite file's size after its last write."""
    return _sum_owned(conn, d1_databases.c.size_bytes, account_id)


def r2_bytes(conn: Connection, account_id: str, now: int) -> int:
    """R2 objects and the parts of unfinished multipart uploads, by their own size (objects
    with equal bytes share a blob, but each counts)."""
    return _sum_owned(conn, r2_objects.c.size, account_id) + _sum_owned(
        conn, r2_parts.c.size, account_id
    )


ByteCounter = Callable[[Connection, str, int], int]

# What each kind of storage holds for an account, in bytes. Label → counter.
KV_LABEL = "KV"
BYTE_COUNTERS: dict[str, ByteCounter] = {
    "Workers' code": code_bytes,
    KV_LABEL: kv_bytes,
    "static assets": asset_bytes,
    "D1 databases": d1_bytes,
    "R2": r2_bytes,
}


def stored_bytes(conn: Connection, account_id: str, now: int) -> dict[str, int]:
    return {label: count(conn, account_id, now) for label, count in BYTE_COUNTERS.items()}


def _count_owned(conn: Connection, table: Table, account_id: str) -> int:
    """How many rows of `table` the account holds."""
    return int(
        conn.execute(
            select(func.count()).select_from(table).where(table.c.account_id == account_id)
        ).scalar_one()
    )


def count_workers(conn: Connection, account_id: str) -> int:
    return _count_owned(conn, scripts, account_id)


def count_namespaces(conn: Connection, account_id: str) -> int:
    return _count_owned(conn, kv_namespaces, account_id)


def count_d1_databases(conn: Connection, account_id: str) -> int:
    return _count_owned(conn, d1_databases, account_id)


def count_kv_keys(conn: Connection, account_id: str, now: int) -> int:
    count = conn.execute(
        select(kv_usage.c.entries).where(kv_usage.c.account_id == account_id)
    ).scalar_one_or_none()
    return int(count or 0)


def count_buckets(conn: Connection, account_id: str) -> int:
    return _count_owned(conn, r2_buckets, account_id)


def count_asset_files(conn: Connection, account_id: str) -> int:
    return _count_owned(conn, asset_files, account_id)


# -- checks ----------------------------------------------------------------------------------------

CLAIM_HINT = " Claiming the account (its claim URL) raises its limits."

FREE_BYTES = (
    "Free space by deleting KV keys (`wrangler kv key delete`), Workers you no longer need "
    "(`wrangler delete`; their versions and unused asset files go with them) or KV namespaces."
)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def _hint(kind: AccountKind) -> str:
    return CLAIM_HINT if kind == "temporary" else ""


def require_bytes(
    conn: Connection,
    settings: Settings,
    account_id: str,
    kind: AccountKind,
    adding: int,
    now: int,
    *,
    freeing: int = 0,
) -> None:
    """Refuse a write that would take the account's stored bytes over its quota."""
    if adding <= freeing:
        return
    limit = quota_for(settings, kind).bytes
    usage = stored_bytes(conn, account_id, now)
    if sum(usage.values()) - freeing + adding > limit:
        raise _bytes_exceeded(kind, usage, limit, adding - freeing)


def _bytes_exceeded(
    kind: AccountKind, usage: dict[str, int], limit: int, needed: int
) -> QuotaExceeded:
    total = sum(usage.values())
    parts = ", ".join(f"{label} {human_bytes(n)}" for label, n in usage.items() if n)
    return QuotaExceeded(
        f"Storage quota reached: this {kind} account stores {human_bytes(total)}"
        f"{f' ({parts})' if parts else ''} of its {human_bytes(limit)} limit "
        f"({limit} bytes), and this write needs {human_bytes(needed)} more. "
        + FREE_BYTES
        + _hint(kind)
    )


class KVBudget:
    """The KV quotas of one account within one write transaction. Its KV usage (the kv_usage row)
    is read when the budget is made, before the transaction deletes anything, and then kept
    current by the entries admitted; the other kinds' bytes are summed once, when first needed.
    A bulk write of n keys therefore costs O(n), and a put does not grow with the account."""

    def __init__(self, conn: Connection, settings: Settings, account_id: str, now: int):
        self.conn, self.account_id, self.now = conn, account_id, now
        self.kind = account_kind(conn, account_id)
        self.limits = quota_for(settings, self.kind)
        self.keys = count_kv_keys(conn, account_id, now)
        self.kv_bytes = kv_bytes(conn, account_id, now)
        self._others: dict[str, int] | None = None

    def admit(self, new_bytes: int, old_bytes: int | None) -> None:
        """Check one entry that replaces one of `old_bytes` (None: a new key), then count it."""
        if old_bytes is None:
            require_count(
                self.kind,
                "KV keys",
                self.keys,
                1,
                self.limits.kv_keys,
                "Delete keys you no longer need (`wrangler kv key delete`, or `kv bulk delete`).",
            )
        delta = new_bytes - (old_bytes or 0)
        if delta > 0:
            if self._others is None:
                self._others = {
                    label: count(self.conn, self.account_id, self.now)
                    for label, count in BYTE_COUNTERS.items()
                    if count is not kv_bytes
                }
            usage = {**self._others, KV_LABEL: self.kv_bytes}
            if sum(usage.values()) + delta > self.limits.bytes:
                raise _bytes_exceeded(self.kind, usage, self.limits.bytes, delta)
        if old_bytes is None:
            self.keys += 1
        self.kv_bytes += delta


def require_count(
    kind: AccountKind, what: str, usage: int, adding: int, limit: int, how_to_free: str
) -> None:
    """Refuse a write that would take a count (Workers, namespaces, keys, files) over its limit."""
    if adding <= 0 or usage + adding <= limit:
        return
    raise QuotaExceeded(
        f"Quota reached: this {kind} account has {usage} {what} of its limit of {limit}"
        f"{f', and this write adds {adding}' if adding > 1 else ''}. {how_to_free}" + _hint(kind)
    )


@dataclass(frozen=True)
class Counted:
    """Something an account holds only so many of: its name in a refusal, how many the account
    holds, its limit in a `Quota`, and how to make room."""

    what: str
    count: Callable[[Connection, str], int]
    limit: Callable[[Quota], int]
    how_to_free: str


WORKERS = Counted(
    "Workers",
    count_workers,
    lambda quota: quota.workers,
    "Delete a Worker you no longer need (`wrangler delete <name>`).",
)
KV_NAMESPACES = Counted(
    "KV namespaces",
    count_namespaces,
    lambda quota: quota.kv_namespaces,
    "Delete a namespace you no longer need (`wrangler kv namespace delete`).",
)
R2_BUCKETS = Counted(
    "R2 buckets",
    count_buckets,
    lambda quota: quota.r2_buckets,
    "Delete a bucket you no longer need (`wrangler r2 bucket delete`).",
)
D1_DATABASES = Counted(
    "D1 databases",
    count_d1_databases,
    lambda quota: quota.d1_databases,
    "Delete a database you no longer need (`wrangler d1 delete`).",
)
ASSET_FILES = Counted(
    "static asset files",
    count_asset_files,
    lambda quota: quota.asset_files,
    "Files stay while a version or an upload session (one hour) uses them; delete "
    "Workers you no longer need (`wrangler delete`), or deploy fewer files.",
)


def require_room(
    conn: Connection,
    settings: Settings,
    account_id: str,
    kind: AccountKind,
    counted: Counted,
    adding: int = 1,
) -> None:
    """Refuse a write that would take the account over its limit of `counted` (10440)."""
    require_count(
        kind,
        counted.what,
        counted.count(conn, account_id),
        adding,
        counted.limit(quota_for(settings, kind)),
        counted.how_to_free,
    )
