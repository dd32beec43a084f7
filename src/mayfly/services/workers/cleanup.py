"""Deleting what an account no longer uses: a Worker's rows, unreferenced asset files and blobs."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select

from mayfly.services.context import ServiceContext
from mayfly.storage.id_sets import one_of
from mayfly.storage.resource_tables import r2_objects, r2_parts
from mayfly.storage.tables import (
    asset_files,
    asset_upload_sessions,
    blobs,
    deployments,
    modules,
    scripts,
    versions,
    worker_schedules,
)


def delete_script_rows(conn: Connection, script_id: str) -> None:
    version_ids = select(versions.c.id).where(versions.c.script_id == script_id)
    conn.execute(delete(worker_schedules).where(worker_schedules.c.script_id == script_id))
    conn.execute(delete(deployments).where(deployments.c.script_id == script_id))
    conn.execute(delete(modules).where(modules.c.version_id.in_(version_ids)))
    conn.execute(delete(versions).where(versions.c.script_id == script_id))
    conn.execute(delete(scripts).where(scripts.c.id == script_id))


def delete_version_rows(conn: Connection, version_ids: list[str]) -> None:
    """Versions pruned for quotas, with their modules and the deployments that named them."""
    if not version_ids:
        return
    conn.execute(delete(deployments).where(deployments.c.version_id.in_(version_ids)))
    conn.execute(delete(modules).where(modules.c.version_id.in_(version_ids)))
    conn.execute(delete(versions).where(versions.c.id.in_(version_ids)))


def delete_scripts_of_accounts(conn: Connection, account_ids: list[str]) -> None:
    """Every Worker of these accounts with its versions, modules and deployments (the reaper's
    batches: one statement per table, by indexed columns, the ids as one parameter)."""
    script_ids = select(scripts.c.id).where(one_of(conn, scripts.c.account_id, account_ids))
    version_ids = select(versions.c.id).where(one_of(conn, versions.c.account_id, account_ids))
    conn.execute(
        delete(worker_schedules).where(one_of(conn, worker_schedules.c.account_id, account_ids))
    )
    conn.execute(delete(deployments).where(deployments.c.script_id.in_(script_ids)))
    conn.execute(delete(modules).where(modules.c.version_id.in_(version_ids)))
    for table in (versions, scripts):
        conn.execute(delete(table).where(one_of(conn, table.c.account_id, account_ids)))


def collect_garbage_blobs(conn: Connection, ctx: ServiceContext, account_id: str) -> None:
    """Delete the account's asset files and blobs that nothing references any more (a blob an R2
    object or multipart part holds is referenced)."""
    wanted: set[str] = set()
    for assets in conn.execute(
        select(versions.c.assets).where(
            versions.c.account_id == account_id, versions.c.assets.is_not(None)
        )
    ).scalars():
        wanted.update((assets or {}).get("manifest", {}).values())
    for manifest in conn.execute(
        select(asset_upload_sessions.c.manifest).where(
            asset_upload_sessions.c.account_id == account_id
        )
    ).scalars():
        wanted.update(entry["hash"] for entry in manifest.values())
    stale = [
        digest
        for digest in conn.execute(
            select(asset_files.c.hash).where(asset_files.c.account_id == account_id)
        ).scalars()
        if digest not in wanted
    ]
    for start in range(0, len(stale), 500):
        conn.execute(
            delete(asset_files).where(
                asset_files.c.account_id == account_id,
                asset_files.c.hash.in_(stale[start : start + 500]),
            )
        )
    referenced = set(
        conn.execute(
            select(modules.c.blob_sha256)
            .join(versions, versions.c.id == modules.c.version_id)
            .where(versions.c.account_id == account_id)
        ).scalars()
    )
    for column, owner in (
        (asset_files.c.blob_sha256, asset_files.c.account_id),
        (r2_objects.c.blob_sha256, r2_objects.c.account_id),
        (r2_parts.c.blob_sha256, r2_parts.c.account_id),
    ):
        referenced.update(conn.execute(select(column).where(owner == account_id)).scalars())
    for digest in (
        conn.execute(select(blobs.c.sha256).where(blobs.c.account_id == account_id)).scalars().all()
    ):
        if digest not in referenced:
            ctx.blobs.delete_one(conn, account_id, digest)
