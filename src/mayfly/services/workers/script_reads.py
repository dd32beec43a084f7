"""Reading a Worker: its versions, deployments, bindings, modules and the account's Workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, func, select

from mayfly.errors import NotFound, ScriptNotFound
from mayfly.model import Account, iso
from mayfly.services.workers.script_base import ScriptBase, render_deployment
from mayfly.services.workers.uploads import DEFAULT_COMPATIBILITY_DATE, Module
from mayfly.services.workers.versions import load_modules, public_binding
from mayfly.storage.tables import deployments, scripts, versions


class ScriptReads(ScriptBase):
    """Reads of a Worker and what it has; nothing here writes."""

    def list_deployments(
        self, account: Account, name: str, page: int = 1, per_page: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the Worker's deployments, newest first, and how many there are in all."""
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            order = (deployments.c.created_at.desc(), deployments.c.id)
            rows, total = _one_page(conn, deployments, row.id, order, page, per_page)
        return [render_deployment(r) for r in rows], total

    def get_deployment(self, account: Account, name: str, deployment_id: str) -> dict[str, Any]:
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            found = conn.execute(
                select(deployments).where(
                    deployments.c.script_id == row.id, deployments.c.id == deployment_id
                )
            ).first()
        if found is None:
            raise NotFound(f"Worker {name!r} has no deployment {deployment_id!r}.")
        return render_deployment(found)

    def list_versions(
        self, account: Account, name: str, page: int = 1, per_page: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the Worker's versions, newest first, and how many there are in all."""
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            order = (versions.c.number.desc(),)
            rows, total = _one_page(conn, versions, row.id, order, page, per_page)
            return [self._render(conn, r, account) for r in rows], total

    def get_version(self, account: Account, name: str, version_id: str) -> dict[str, Any]:
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            version = self._version_row(conn, row.id, version_id)
            if version is None:
                raise ScriptNotFound(f"Version {version_id!r} of Worker {name!r} does not exist.")
            return self._render(conn, version, account)

    def current(self, account: Account, name: str) -> tuple[Any, dict[str, Any] | None]:
        """The script row and its deployed version (rendered), or 10007."""
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            if row.current_version_id is None:
                return row, None
            version = self._version_row(conn, row.id, row.current_version_id)
            return row, self._render(conn, version, account)

    def list_script_summaries(self, account: Account) -> list[dict[str, Any]]:
        """Each Worker with its deployed version's etag, handlers and compatibility (one query)."""
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(
                    scripts,
                    versions.c.handlers,
                    versions.c.compatibility_date,
                    versions.c.compatibility_flags,
                    versions.c.assets,
                )
                .select_from(
                    scripts.outerjoin(versions, versions.c.id == scripts.c.current_version_id)
                )
                .where(scripts.c.account_id == account.id)
                .order_by(scripts.c.name)
            ).all()
        return [
            {
                "id": r.name,
                "tag": r.id,
                "etag": r.current_version_id.replace("-", "") if r.current_version_id else None,
                "handlers": list(r.handlers or []),
                "created_on": iso(r.created_at),
                "modified_on": iso(r.updated_at),
                "usage_model": "standard",
                "has_assets": r.assets is not None,
                "has_modules": True,
                "logpush": bool((r.settings or {}).get("logpush", False)),
                "compatibility_date": r.compatibility_date or DEFAULT_COMPATIBILITY_DATE,
                "compatibility_flags": list(r.compatibility_flags or []),
            }
            for r in rows
        ]

    def current_bindings(self, account: Account, name: str) -> list[dict[str, Any]]:
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            if row.current_version_id is None:
                return []
            stored = conn.execute(
                select(versions.c.bindings).where(versions.c.id == row.current_version_id)
            ).scalar_one()
        return [public_binding(b) for b in stored]

    def script_modules(self, account: Account, name: str) -> tuple[str, list[Module]]:
        """The deployed version's main module name and its modules (10007 without one)."""
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            current = self._version_row(conn, row.id, row.current_version_id or "")
            if current is None:
                raise ScriptNotFound(f"Worker {name!r} has no deployed version.")
            return current.main_module, load_modules(conn, self.ctx.blobs, account.id, current.id)


def _one_page(
    conn: Connection,
    table: Table,
    script_id: str,
    order: tuple[ColumnElement[Any], ...],
    page: int,
    per_page: int,
) -> tuple[Sequence[Row[Any]], int]:
    """One page of a Worker's rows of `table` (its deployments, its versions) in `order`, and
    how many there are in all."""
    of_script = table.c.script_id == script_id
    total = conn.execute(select(func.count()).select_from(table).where(of_script)).scalar_one()
    rows = conn.execute(
        select(table)
        .where(of_script)
        .order_by(*order)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return rows, int(total)
