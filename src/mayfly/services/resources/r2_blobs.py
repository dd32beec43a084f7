"""An R2 object's bytes are a blob of its account, shared with equal objects, parts, modules and
asset files. A blob goes when nothing names it any more.

On PostgreSQL, a writer that is about to name a blob (`hold_blob`, a share lock on its row) and a
deleter that finds it unnamed (`release_blobs`, an exclusive lock taken before it looks) are
ordered by the row lock: the deleter looks again after the writer committed and keeps the blob; a
writer that comes after a deletion finds no row and writes the blob again. SQLite serialises
writers anyway (the locks render as nothing there).
"""

from __future__ import annotations

from sqlalchemy import Connection, exists, select

from mayfly.services.context import ServiceContext
from mayfly.storage.resource_tables import r2_objects, r2_parts
from mayfly.storage.tables import asset_files, blobs, modules, versions


def hold_blob(conn: Connection, account_id: str, digest: str) -> None:
    """Keep the blob from being released until this transaction ends (call before naming it)."""
    conn.execute(
        select(blobs.c.sha256)
        .where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        .with_for_update(read=True)
    )


def release_blobs(
    conn: Connection, ctx: ServiceContext, account_id: str, digests: set[str]
) -> None:
    """Delete the account's blobs among `digests` that no object, part, module or asset names."""
    for digest in sorted(digests):
        held = conn.execute(
            select(blobs.c.sha256)
            .where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
            .with_for_update()
        ).first()
        if held is None:
            continue
        named = conn.execute(
            select(
                exists().where(
                    r2_objects.c.account_id == account_id, r2_objects.c.blob_sha256 == digest
                )
                | exists().where(
                    r2_parts.c.account_id == account_id, r2_parts.c.blob_sha256 == digest
                )
                | exists().where(
                    asset_files.c.account_id == account_id, asset_files.c.blob_sha256 == digest
                )
                | exists().where(
                    modules.c.blob_sha256 == digest,
                    modules.c.version_id.in_(
                        select(versions.c.id).where(versions.c.account_id == account_id)
                    ),
                )
            )
        ).scalar_one()
        if not named:
            ctx.blobs.delete_one(conn, account_id, digest)
