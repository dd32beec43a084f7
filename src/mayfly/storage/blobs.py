"""Blobs (module sources, asset files): content-addressed per account.

Files under `<data dir>/blobs/<account>/` by default; in the database (`blobs.data`) when several
control planes share PostgreSQL. Deleting an account's blobs is one directory or one DELETE.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from sqlalchemy import Connection, String, delete, insert, literal, select

from mayfly.storage.tables import blobs


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path | None):
        """root=None stores bytes in the database; otherwise in files below root."""
        self.root = root
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def _path(self, account_id: str, digest: str) -> Path:
        assert self.root is not None
        return self.root / account_id / digest[:2] / digest

    def stage(self, account_id: str, data: bytes) -> str:
        """Hash, and write the file when blobs are files: the slow part of `put`, for before a
        write transaction. Returns the digest to hand to `put`."""
        digest = sha256_hex(data)
        if self.root is not None:
            self._write_file(account_id, digest, data)
        return digest

    def _write_file(self, account_id: str, digest: str, data: bytes) -> None:
        path = self._path(account_id, digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(path)

    def put(self, conn: Connection, account_id: str, data: bytes, digest: str | None = None) -> str:
        """Record a blob (`digest` from `stage`, or hashed here); returns its digest."""
        digest = digest or sha256_hex(data)
        exists = conn.execute(
            select(blobs.c.sha256).where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        ).first()
        if exists is None:
            conn.execute(
                insert(blobs).values(
                    account_id=account_id,
                    sha256=digest,
                    size=len(data),
                    data=data if self.root is None else None,
                )
            )
        if self.root is not None:
            # Normally staged already (then only a stat); written here when it was not, or when a
            # garbage collection removed the staged file meanwhile.
            self._write_file(account_id, digest, data)
        return digest

    def has(self, conn: Connection, account_id: str, digest: str) -> bool:
        row = conn.execute(
            select(blobs.c.sha256).where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        ).first()
        return row is not None

    def get(self, conn: Connection, account_id: str, digest: str) -> bytes:
        if self.root is not None:
            return self._path(account_id, digest).read_bytes()
        row = conn.execute(
            select(blobs.c.data).where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        ).one()
        return bytes(row.data)

    def delete_account(self, conn: Connection, account_id: str) -> None:
        conn.execute(delete(blobs).where(blobs.c.account_id == account_id))
        if self.root is not None:
            shutil.rmtree(self.root / account_id, ignore_errors=True)

    def copy_account(self, conn: Connection, source: str, target: str) -> list[Path]:
        """Give `target` every blob of `source` (rows, and files as hard links or copies).

        Returns the files created, so that a caller whose transaction fails can remove them.
        """
        target_has = select(blobs.c.sha256).where(blobs.c.account_id == target)
        missing = (
            conn.execute(
                select(blobs.c.sha256).where(
                    blobs.c.account_id == source, blobs.c.sha256.not_in(target_has)
                )
            )
            .scalars()
            .all()
        )
        if not missing:
            return []
        conn.execute(
            insert(blobs).from_select(
                ["account_id", "sha256", "size", "data"],
                select(literal(target, String()), blobs.c.sha256, blobs.c.size, blobs.c.data).where(
                    blobs.c.account_id == source, blobs.c.sha256.in_(missing)
                ),
            )
        )
        created: list[Path] = []
        if self.root is None:
            return created
        for digest in missing:
            src, dst = self._path(source, digest), self._path(target, digest)
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            created.append(dst)
        return created

    def account_has_files(self, account_id: str) -> bool:
        return self.root is not None and (self.root / account_id).exists()

    def delete_one(self, conn: Connection, account_id: str, digest: str) -> None:
        conn.execute(
            delete(blobs).where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        )
        if self.root is not None:
            self._path(account_id, digest).unlink(missing_ok=True)
