"""What an account holds, as people see it: Workers with URL, version and last deploy; KV; D1."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select

from mayfly.model import Account
from mayfly.services.context import ServiceContext
from mayfly.storage.resource_tables import d1_databases, r2_buckets, r2_objects
from mayfly.storage.tables import deployments, kv_entries, kv_namespaces, scripts, versions


@dataclass(frozen=True)
class WorkerSummary:
    name: str
    url: str
    version_id: str | None
    version_number: int | None
    deployed_at: datetime | None
    enabled: bool
    assets: int  # static asset files of the deployed version


@dataclass(frozen=True)
class NamespaceSummary:
    id: str
    title: str
    keys: int


@dataclass(frozen=True)
class DatabaseSummary:
    id: str
    name: str
    size_bytes: int


@dataclass(frozen=True)
class BucketSummary:
    name: str
    objects: int
    size_bytes: int


@dataclass(frozen=True)
class Inventory:
    workers: list[WorkerSummary]
    namespaces: list[NamespaceSummary]
    databases: list[DatabaseSummary] = field(default_factory=list)
    buckets: list[BucketSummary] = field(default_factory=list)


def workers_of(conn: Connection, ctx: ServiceContext, account: Account) -> list[WorkerSummary]:
    rows = conn.execute(
        select(
            scripts.c.name,
            scripts.c.current_version_id,
            scripts.c.subdomain_enabled,
            versions.c.number,
            versions.c.assets,
            deployments.c.created_at.label("deployed_at"),
        )
        .select_from(
            scripts.outerjoin(versions, versions.c.id == scripts.c.current_version_id).outerjoin(
                deployments, deployments.c.id == scripts.c.current_deployment_id
            )
        )
        .where(scripts.c.account_id == account.id)
        .order_by(scripts.c.name)
    ).all()
    return [
        WorkerSummary(
            name=r.name,
            url=ctx.worker_url(r.name, account.name),
            version_id=r.current_version_id,
            version_number=r.number,
            deployed_at=r.deployed_at,
            enabled=bool(r.subdomain_enabled),
            assets=len((r.assets or {}).get("manifest") or {}),
        )
        for r in rows
    ]


def namespaces_of(conn: Connection, account_id: str) -> list[NamespaceSummary]:
    counts = (
        select(kv_entries.c.namespace_id, func.count().label("keys"))
        .where(kv_entries.c.account_id == account_id)
        .group_by(kv_entries.c.namespace_id)
        .subquery()
    )
    rows = conn.execute(
        select(kv_namespaces.c.id, kv_namespaces.c.title, counts.c["keys"])
        .select_from(kv_namespaces.outerjoin(counts, counts.c.namespace_id == kv_namespaces.c.id))
        .where(kv_namespaces.c.account_id == account_id)
        .order_by(kv_namespaces.c.title)
    ).all()
    return [NamespaceSummary(r.id, r.title, int(r.keys or 0)) for r in rows]


def databases_of(conn: Connection, account_id: str) -> list[DatabaseSummary]:
    rows = conn.execute(
        select(d1_databases.c.id, d1_databases.c.name, d1_databases.c.size_bytes)
        .where(d1_databases.c.account_id == account_id)
        .order_by(d1_databases.c.name)
    ).all()
    return [DatabaseSummary(r.id, r.name, int(r.size_bytes)) for r in rows]


def buckets_of(conn: Connection, account_id: str) -> list[BucketSummary]:
    """R2 buckets with their objects' count and bytes (one aggregate over the account's objects)."""
    totals = (
        select(
            r2_objects.c.bucket_id,
            func.count().label("objects"),
            func.sum(r2_objects.c.size).label("size_bytes"),
        )
        .where(r2_objects.c.account_id == account_id)
        .group_by(r2_objects.c.bucket_id)
        .subquery()
    )
    rows = conn.execute(
        select(r2_buckets.c.name, totals.c.objects, totals.c.size_bytes)
        .select_from(r2_buckets.outerjoin(totals, totals.c.bucket_id == r2_buckets.c.id))
        .where(r2_buckets.c.account_id == account_id)
        .order_by(r2_buckets.c.name)
    ).all()
    return [BucketSummary(r.name, int(r.objects or 0), int(r.size_bytes or 0)) for r in rows]


def inventory_of(conn: Connection, ctx: ServiceContext, account: Account) -> Inventory:
    return Inventory(
        workers_of(conn, ctx, account),
        namespaces_of(conn, account.id),
        databases_of(conn, account.id),
        buckets_of(conn, account.id),
    )
