"""A D1 database exported as SQL, and an uploaded SQL file imported into one (all or nothing)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mayfly.errors import ValidationError
from mayfly.model import Account
from mayfly.services.resources import d1_sql

if TYPE_CHECKING:
    from mayfly.services.resources.d1 import Target


class D1ImportExport:
    """Export and import: a base of `D1Service` (d1.py), which provides the rest it uses."""

    if TYPE_CHECKING:

        def path(self, database_id: str) -> Path: ...
        def uploads_dir(self) -> Path: ...
        def resolve(self, account: Account, id_or_name: str) -> str: ...
        def _target(self, database_id: str, account: Account | None) -> Target: ...
        def _run(
            self, target: Target, statements: list[d1_sql.Statement], raw: bool
        ) -> list[dict[str, Any]]: ...

    def dump(self, database_id: str, options: dict[str, Any]) -> Iterator[str]:
        """The database as SQL (an export signed for this id: the caller checked the account)."""
        self._target(database_id, None)
        tables = options.get("tables") or []
        if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
            raise ValidationError("dump_options.tables must be a list of table names.")
        return d1_sql.dump(
            self.path(database_id),
            no_schema=bool(options.get("no_schema")),
            no_data=bool(options.get("no_data")),
            tables=tables,
        )

    def upload_path(self, database_id: str, etag: str) -> Path:
        return self.uploads_dir() / f"{database_id}.{etag}.sql"

    def import_file(self, account: Account, id_or_name: str, etag: str) -> dict[str, Any]:
        """Run an uploaded SQL file (all or nothing) and delete it; D1's import result."""
        database_id = self.resolve(account, id_or_name)
        upload = self.upload_path(database_id, etag)
        if not upload.exists():
            raise ValidationError("No file was uploaded for this import (or it was already run).")
        try:
            sql = upload.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError("The SQL file is not UTF-8 text.") from exc
        finally:
            upload.unlink(missing_ok=True)
        texts = d1_sql.split_statements(sql)
        target = self._target(database_id, account)
        started = time.perf_counter()
        results = self._run(target, [d1_sql.Statement(t, []) for t in texts], raw=False)
        duration = (time.perf_counter() - started) * 1000
        meta = {
            "duration": duration,
            "rows_read": sum(r["meta"]["rows_read"] for r in results),
            "rows_written": sum(r["meta"]["rows_written"] for r in results),
            "changes": sum(r["meta"]["changes"] for r in results),
            "size_after": results[-1]["meta"]["size_after"] if results else target.size_bytes,
            "changed_db": any(r["meta"]["changed_db"] for r in results),
        }
        bookmark = self.bookmark(database_id)
        return {
            "success": True,
            "type": "import",
            "at_bookmark": bookmark,
            "status": "complete",
            "messages": [f"Executed {len(texts)} queries."],
            "errors": [],
            "result": {
                "success": True,
                "num_queries": len(texts),
                "final_bookmark": bookmark,
                "meta": meta,
            },
        }

    def bookmark(self, database_id: str) -> str:
        """A stand-in for D1's time-travel bookmark: the file's size and modification time."""
        stat = self.path(database_id).stat()
        digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
        return f"{digest[:8]}-{digest[8:16]}-{digest[16:24]}-{digest[24:56]}"
