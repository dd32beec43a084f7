"""Backups of a single-node (SQLite) installation: `mayfly admin backup DIR` / `restore DIR`.

A backup is consistent while the server runs: the database is copied with SQLite's online backup
API (one read snapshot), and the backup holds exactly the blob files that snapshot references.
Blobs are content-addressed and never rewritten, so a file the snapshot names is the file it meant;
but a version pruned after the snapshot loses its files, so every blob file is copied once before
the snapshot, and what the snapshot references beyond that right after it (a snapshot is taken
again, up to 3 times, while a referenced file is missing: an account reaped meanwhile). The
platform key (secret.key) goes along: without it the restored secrets could not be decrypted.

PostgreSQL installations back up with PostgreSQL's tools (docs/operating.md: pg_dump); their blobs
are in the database.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mayfly.settings import Settings

DATABASE = "mayfly.db"
KEY = "secret.key"
MANIFEST = "backup.json"


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class BackupResult:
    directory: Path
    blobs: int
    missing_blobs: int
    database_bytes: int

    def to_json(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "blobs": self.blobs,
            "missing_blobs": self.missing_blobs,
            "database_bytes": self.database_bytes,
        }


def sqlite_path(settings: Settings) -> Path:
    url = settings.database_url
    if not url.startswith("sqlite"):
        raise BackupError(
            "the database is PostgreSQL: back it up with pg_dump (docs/operating.md); "
            "mayfly admin backup copies SQLite installations"
        )
    path = url.split("///", 1)[1] if "///" in url else ""
    if path in ("", ":memory:"):
        raise BackupError("an in-memory database cannot be backed up")
    return Path(path)


def _empty_directory(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty: back up into a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)


def _snapshot(source_path: Path, target_path: Path) -> tuple[list[tuple[str, str]], str | None]:
    """The database as of one read snapshot; returns the blobs it references and its revision."""
    target_path.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)  # all pages in one step: one consistent snapshot
        referenced = target.execute("SELECT account_id, sha256 FROM blobs").fetchall()
        revision = target.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        target.close()
        source.close()
    return [(str(a), str(d)) for a, d in referenced], (str(revision[0]) if revision else None)


def _copy_blob(blob_root: Path, target_root: Path, relative: Path) -> bool:
    if (target_root / relative).exists():
        return True
    try:
        (target_root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blob_root / relative, target_root / relative)
    except FileNotFoundError:
        return False
    return True


def backup(settings: Settings, directory: Path, attempts: int = 3) -> BackupResult:
    source_path = sqlite_path(settings)
    if not source_path.exists():
        raise BackupError(f"no database at {source_path}")
    _empty_directory(directory)
    target_path = directory / DATABASE
    blob_root, target_root = settings.data_dir / "blobs", directory / "blobs"
    # Blob files first (all of them), then the snapshot, then whatever it references that came
    # after: a version pruned (its files deleted) after the snapshot was copied in the first pass.
    if blob_root.exists():
        for path in blob_root.glob("*/*/*"):
            if path.is_file() and not path.name.endswith((".tmp", ".sweep")):
                _copy_blob(blob_root, target_root, path.relative_to(blob_root))
    for _ in range(attempts):
        referenced, revision = _snapshot(source_path, target_path)
        wanted = {Path(a) / d[:2] / d for a, d in referenced}
        missing = sum(not _copy_blob(blob_root, target_root, r) for r in wanted)
        if not missing:
            break
    copied = len(wanted) - missing
    if target_root.exists():  # files of rows the snapshot no longer has
        for path in target_root.glob("*/*/*"):
            if path.relative_to(target_root) not in wanted:
                path.unlink()
    key = settings.data_dir / KEY
    if key.exists():
        shutil.copyfile(key, directory / KEY)
        (directory / KEY).chmod(0o600)
    size = target_path.stat().st_size
    (directory / MANIFEST).write_text(
        json.dumps(
            {
                "format": 1,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "schema_revision": revision[0] if revision else None,
                "blobs": copied,
                "missing_blobs": missing,
                "key_file": key.exists(),
            },
            indent=2,
        )
    )
    return BackupResult(directory, copied, missing, size)


def restore(settings: Settings, directory: Path) -> Path:
    """Copy a backup into the (new, empty) data dir; the server migrates it at its next start."""
    if not (directory / MANIFEST).exists() or not (directory / DATABASE).exists():
        raise BackupError(f"{directory} is not a Mayfly backup (no {MANIFEST} or {DATABASE})")
    target = sqlite_path(settings)
    if target.exists():
        raise BackupError(
            f"a database already exists at {target}: restore into a new data dir "
            "(--data-dir), then point the server at it"
        )
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    if (directory / KEY).exists():
        if (data_dir / KEY).exists() and (data_dir / KEY).read_bytes() != (
            directory / KEY
        ).read_bytes():
            raise BackupError(f"{data_dir / KEY} holds another platform key: restore elsewhere")
        shutil.copyfile(directory / KEY, data_dir / KEY)
        (data_dir / KEY).chmod(0o600)
    if (directory / "blobs").exists():
        shutil.copytree(directory / "blobs", data_dir / "blobs", dirs_exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".restoring")
    shutil.copyfile(directory / DATABASE, partial)
    partial.replace(target)  # the database last: a half-restored dir has none
    return target
