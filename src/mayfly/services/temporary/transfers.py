"""Moving what one account holds into another: Workers (renamed where names clash), their versions
and deployments, KV namespaces and entries, D1 databases and R2 buckets (renamed on a clash), static
assets and blobs. Planned first (the preview the
human confirms), then done inside the caller's transaction. Claiming uses it; nothing else moves.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, delete, insert, select, update

from mayfly.errors import ValidationError
from mayfly.model import Account
from mayfly.services.context import ServiceContext
from mayfly.services.resources.quotas import count_kv_keys, count_workers, quota_for, stored_bytes
from mayfly.services.resources.r2 import bucket_rows
from mayfly.services.workers.inventory import databases_of, namespaces_of, workers_of
from mayfly.services.workers.quarantine_lifts import move_worker_quarantine
from mayfly.services.workers.script_base import check_script_name
from mayfly.storage.resource_tables import (
    d1_databases,
    r2_buckets,
    r2_objects,
    r2_parts,
    r2_uploads,
)
from mayfly.storage.tables import (
    asset_files,
    asset_upload_sessions,
    blobs,
    deployments,
    kv_entries,
    kv_namespaces,
    moved_hosts,
    scripts,
    versions,
    worker_schedules,
)


@dataclass(frozen=True)
class WorkerMove:
    name: str
    old_host: str
    old_url: str
    new_name: str
    new_url: str
    clashes: bool  # the original name exists in the target: the page offers a rename
    problem: str | None = None


@dataclass(frozen=True)
class NamespaceMove:
    id: str
    title: str
    new_title: str
    clashes: bool
    problem: str | None = None


@dataclass(frozen=True)
class RenameMove:
    """An R2 bucket or a D1 database: renamed `<name>-2`… when the target has one of its name
    (bindings, and a database's SQLite file, name its id, so the Workers that use it keep using
    it and nothing else changes)."""

    id: str
    name: str
    new_name: str
    clashes: bool


class Named(Protocol):
    """A bucket's or a database's row: its id and its name, unique within its account."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class MovePlan:
    source: Account
    target: Account
    workers: list[WorkerMove]
    namespaces: list[NamespaceMove]
    problems: list[str] = field(default_factory=list)
    buckets: list[RenameMove] = field(default_factory=list)
    databases: list[RenameMove] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not (
            self.problems
            or any(m.problem for m in self.workers)
            or any(n.problem for n in self.namespaces)
        )


def free_variant(name: str, taken: set[str], limit: int = 63) -> str:
    """`name-2`, `name-3`… the first not in `taken` (kept within `limit` characters)."""
    for n in range(2, 10_000):
        suffix = f"-{n}"
        candidate = name[: limit - len(suffix)].rstrip("-_") + suffix
        if candidate not in taken:
            return candidate
    raise ValidationError(f"No free name like {name!r}.")  # pragma: no cover


def plan_transfer(
    conn: Connection,
    ctx: ServiceContext,
    source: Account,
    target: Account,
    renames: dict[str, str],
    title_renames: dict[str, str],
) -> MovePlan:
    """Where everything would land: `renames` by Worker name, `title_renames` by namespace id.

    A name that clashes gets a free variant as its suggestion; a chosen name that clashes, or is
    invalid, is a problem the page shows next to it.
    """
    workers = _plan_workers(conn, ctx, source, target, renames)
    namespaces = _plan_namespaces(conn, source, target, title_renames)
    buckets = _plan_renames(bucket_rows(conn, source.id), bucket_rows(conn, target.id))
    databases = _plan_renames(databases_of(conn, source.id), databases_of(conn, target.id))
    limits = quota_for(ctx.settings, target.kind)
    problems = _too_many(
        target, "KV namespaces", namespaces_of(conn, target.id), namespaces, limits.kv_namespaces
    )
    problems += quota_problems(conn, ctx, source, target, len(workers))
    problems += _too_many(
        target, "R2 buckets", bucket_rows(conn, target.id), buckets, limits.r2_buckets
    )
    problems += _too_many(
        target, "D1 databases", databases_of(conn, target.id), databases, limits.d1_databases
    )
    return MovePlan(source, target, workers, namespaces, problems, buckets, databases)


def _too_many(target: Account, what: str, held: Sized, moving: Sized, limit: int) -> list[str]:
    """The problem, if the target would hold more than `limit` of `what` after the move."""
    if len(held) + len(moving) <= limit:
        return []
    return [
        f"{target.name} would hold more than {limit} {what}; "
        "delete some there first, or keep this account instead."
    ]


def _plan_renames(moving: Sequence[Named], in_target: Sequence[Named]) -> list[RenameMove]:
    """Where each of `moving` lands, in order: its own name, or `<name>-2`… when the target or an
    earlier one here has taken it."""
    names_in_target = {row.name for row in in_target}
    taken = set(names_in_target)
    moves = []
    for row in moving:
        new_name = free_variant(row.name, taken) if row.name in taken else row.name
        taken.add(new_name)
        moves.append(RenameMove(row.id, row.name, new_name, row.name in names_in_target))
    return moves


def quota_problems(
    conn: Connection, ctx: ServiceContext, source: Account, target: Account, workers: int
) -> list[str]:
    """What the target's other quotas say about taking in everything the source holds (counted
    as if nothing were shared: asset files the target already has move as nothing)."""
    limits = quota_for(ctx.settings, target.kind)
    now = int(ctx.clock.now().timestamp())
    problems = []
    counts = (
        ("Workers", count_workers(conn, target.id) + workers, limits.workers),
        (
            "KV keys",
            count_kv_keys(conn, target.id, now) + count_kv_keys(conn, source.id, now),
            limits.kv_keys,
        ),
        (
            "stored bytes",
            sum(stored_bytes(conn, target.id, now).values())
            + sum(stored_bytes(conn, source.id, now).values()),
            limits.bytes,
        ),
    )
    for what, total, limit in counts:
        if total > limit:
            problems.append(
                f"{target.name} would hold {total} {what}, over its limit of {limit}; "
                "free space there first, or keep this account instead."
            )
    return problems


def _plan_workers(
    conn: Connection,
    ctx: ServiceContext,
    source: Account,
    target: Account,
    renames: dict[str, str],
) -> list[WorkerMove]:
    existing = {w.name for w in workers_of(conn, ctx, target)}
    used = set(existing)
    moves = []
    for w in workers_of(conn, ctx, source):
        clashes = w.name in existing
        wanted = renames.get(w.name, "").strip().lower()
        if not wanted:
            wanted = free_variant(w.name, used | existing) if clashes else w.name
        problem = None
        try:
            check_script_name(wanted)
        except ValidationError as exc:
            problem = exc.message
        if problem is None and wanted in used:
            problem = f"{target.name} already has a Worker named {wanted!r}; choose another name."
        used.add(wanted)
        moves.append(
            WorkerMove(
                w.name,
                ctx.worker_host(w.name, source.name),
                w.url,
                wanted,
                ctx.worker_url(wanted, target.name),
                clashes,
                problem,
            )
        )
    return moves


def _plan_namespaces(
    conn: Connection, source: Account, target: Account, title_renames: dict[str, str]
) -> list[NamespaceMove]:
    existing = {n.title for n in namespaces_of(conn, target.id)}
    used = set(existing)
    moves = []
    for ns in namespaces_of(conn, source.id):
        clashes = ns.title in existing
        wanted = title_renames.get(ns.id, "").strip()
        if not wanted:
            wanted = f"{ns.title} ({source.name})" if clashes else ns.title
        problem = None
        if len(wanted) > 512:
            problem = "KV namespace titles are at most 512 characters."
        elif wanted in used:
            problem = f"{target.name} already has a KV namespace titled {wanted!r}."
        used.add(wanted)
        moves.append(NamespaceMove(ns.id, ns.title, wanted, clashes, problem))
    return moves


def transfer(conn: Connection, ctx: ServiceContext, plan: MovePlan, now: datetime) -> list[Path]:
    """Move everything as planned (the caller's transaction); returns blob files created."""
    source, target = plan.source, plan.target
    for m in plan.workers:
        conn.execute(
            update(scripts)
            .where(scripts.c.account_id == source.id, scripts.c.name == m.name)
            .values(account_id=target.id, name=m.new_name, updated_at=now)
        )
        move_worker_quarantine(conn, source.id, m.name, target.id, m.new_name)
        conn.execute(
            insert(moved_hosts).values(
                old_host=m.old_host,
                new_url=m.new_url,
                created_at=now,
                keep_until=now + timedelta(seconds=ctx.settings.tombstone_cooldown),
            )
        )
    for database in plan.databases:
        conn.execute(
            update(d1_databases)
            .where(d1_databases.c.id == database.id)
            .values(account_id=target.id, name=database.new_name)
        )
    for bucket in plan.buckets:
        conn.execute(
            update(r2_buckets)
            .where(r2_buckets.c.id == bucket.id)
            .values(account_id=target.id, name=bucket.new_name)
        )
    for table in (
        versions,
        deployments,
        kv_entries,
        worker_schedules,
        r2_objects,
        r2_uploads,
        r2_parts,
    ):
        conn.execute(
            update(table).where(table.c.account_id == source.id).values(account_id=target.id)
        )
    for ns in plan.namespaces:
        conn.execute(
            update(kv_namespaces)
            .where(kv_namespaces.c.id == ns.id)
            .values(account_id=target.id, title=ns.new_title)
        )
    # Static assets are keyed by the client's content hash: a key the target already has is
    # the same file, so only the others move. Unfinished upload sessions are dropped.
    target_assets = select(asset_files.c.hash).where(asset_files.c.account_id == target.id)
    conn.execute(
        delete(asset_files).where(
            asset_files.c.account_id == source.id, asset_files.c.hash.in_(target_assets)
        )
    )
    conn.execute(
        update(asset_files)
        .where(asset_files.c.account_id == source.id)
        .values(account_id=target.id)
    )
    conn.execute(
        delete(asset_upload_sessions).where(asset_upload_sessions.c.account_id == source.id)
    )
    created = ctx.blobs.copy_account(conn, source.id, target.id)
    conn.execute(delete(blobs).where(blobs.c.account_id == source.id))
    return created
