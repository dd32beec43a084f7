"""Blobs (module sources, asset files): content-addressed per account.

Files under `<data dir>/blobs/<account>/` by default; in the database (`blobs.data`) when several
control planes share PostgreSQL. Deleting an account's blobs is one directory or one DELETE.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

from sqlalchemy import Connection, String, delete, insert, literal, select

from mayfly.storage.tables import blobs

TMP_SUFFIX = ".tmp"
SWEEP_SUFFIX = ".sweep"
ReadTransaction = Callable[[], AbstractContextManager[Connection]]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path | None):
        """root=None stores bytes in the database; otherwise in files below root."""
        self.root = root
        self._stagers: ThreadPoolExecutor | None = None
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

    def stage_many(self, account_id: str, items: list[bytes]) -> list[str]:
        """`stage` for many blobs, the files written by a few threads at once (writing a file
        costs file-system latency, not CPU)."""
        if self.root is None or len(items) < 2:
            return [self.stage(account_id, data) for data in items]
        if self._stagers is None:
            self._stagers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="blob-stage")
        return list(self._stagers.map(lambda data: self.stage(account_id, data), items))

    def record_many(
        self, conn: Connection, account_id: str, staged: list[tuple[str, bytes]]
    ) -> None:
        """Rows for staged blobs (digest, data) the account does not have yet: one query and one
        insert. A staged file a garbage collection removed meanwhile is written again."""
        wanted = {digest: data for digest, data in staged}
        have: set[str] = set()
        digests = sorted(wanted)
        for start in range(0, len(digests), 500):
            have.update(
                conn.execute(
                    select(blobs.c.sha256).where(
                        blobs.c.account_id == account_id,
                        blobs.c.sha256.in_(digests[start : start + 500]),
                    )
                ).scalars()
            )
        new = [digest for digest in digests if digest not in have]
        if not new:
            return
        conn.execute(
            insert(blobs),
            [
                {
                    "account_id": account_id,
                    "sha256": digest,
                    "size": len(wanted[digest]),
                    "data": wanted[digest] if self.root is None else None,
                }
                for digest in new
            ],
        )
        if self.root is not None:
            for digest in new:
                if not self._path(account_id, digest).exists():
                    self._write_file(account_id, digest, wanted[digest])

    def _write_file(self, account_id: str, digest: str, data: bytes) -> None:
        """Write (or, when present, touch) the file, always before the row is committed.

        A crash before the commit leaves a file without a row: `sweep_orphans` removes those once
        they are old. Touching a present file keeps the sweep off a file about to be referenced.
        """
        path = self._path(account_id, digest)
        try:
            os.utime(path)
            return
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=digest[:16], suffix=TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

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

    def get(self, conn: Connection, account_id: str, digest: str) -> bytes:
        if self.root is not None:
            return self._path(account_id, digest).read_bytes()
        row = conn.execute(
            select(blobs.c.data).where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        ).one()
        return bytes(row.data)

    def delete_account(self, conn: Connection, account_id: str) -> None:
        conn.execute(delete(blobs).where(blobs.c.account_id == account_id))
        self.delete_account_files(account_id)

    def delete_account_files(self, account_id: str) -> None:
        """The account's files only (its rows are deleted by the caller, in its transaction)."""
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
                os.utime(dst)  # see _write_file
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            os.utime(dst)
            created.append(dst)
        return created

    def delete_one(self, conn: Connection, account_id: str, digest: str) -> None:
        conn.execute(
            delete(blobs).where(blobs.c.account_id == account_id, blobs.c.sha256 == digest)
        )
        if self.root is not None:
            self._path(account_id, digest).unlink(missing_ok=True)

    def sweep_orphans(self, read: ReadTransaction, max_age_seconds: float) -> int:
        """Delete blob files no committed row names, and leftover temporary files, once older
        than max_age_seconds (left by a crash, a rolled-back transaction or a deletion that
        happened before the commit). Returns how many files were removed.

        Safe against a concurrent writer: writers touch or write the file before committing its
        row, and a candidate is moved aside, then checked again (age and row) before deletion.
        """
        if self.root is None or not self.root.exists():
            return 0
        cutoff = time.time() - max_age_seconds
        removed = 0
        for account_dir in self.root.iterdir():
            if not account_dir.is_dir():
                continue
            try:
                old = [path for path in account_dir.glob("*/*") if _older_than(path, cutoff)]
            except FileNotFoundError:  # the account was deleted meanwhile
                continue
            if not old:
                continue
            known = self._digests(read, account_dir.name)
            for path in old:
                if "." in path.name:  # a temporary file, or one an interrupted sweep set aside
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
                elif path.name not in known:
                    removed += self._sweep_one(read, account_dir.name, path, cutoff)
        return removed

    def _digests(self, read: ReadTransaction, account_id: str) -> set[str]:
        with read() as conn:
            return set(
                conn.execute(select(blobs.c.sha256).where(blobs.c.account_id == account_id))
                .scalars()
                .all()
            )

    def _sweep_one(self, read: ReadTransaction, account_id: str, path: Path, cutoff: float) -> int:
        aside = path.with_name(path.name + SWEEP_SUFFIX)
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return 0
        # A writer that touched the file, or committed its row, since the first look wins.
        if _older_than(aside, cutoff) and path.name not in self._digests(read, account_id):
            aside.unlink(missing_ok=True)
            return 1
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)  # unless a writer wrote it anew meanwhile
        aside.unlink(missing_ok=True)
        return 0


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.is_file() and path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False
