"""What every Worker operation shares: finding the Worker, rendering versions, deploying, pruning."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from mayfly.errors import ScriptNotFound, ValidationError
from mayfly.model import Account, Principal, as_utc, iso
from mayfly.services.context import ServiceContext
from mayfly.services.core.owned import named_row
from mayfly.services.resources import quotas
from mayfly.services.resources.assets import AssetService
from mayfly.services.workers.cleanup import collect_garbage_blobs, delete_version_rows
from mayfly.services.workers.handlers import detect_handlers
from mayfly.services.workers.versions import render_version
from mayfly.storage.tables import deployments, modules, scripts, versions


def check_script_name(name: str) -> None:
    if not re.match(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$", name):
        raise ValidationError(
            f"Worker name {name!r} must be 1-63 lowercase letters, digits, '-' or '_', "
            "starting and ending with a letter or digit."
        )


def render_deployment(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_on": iso(row.created_at),
        "source": row.source,
        "strategy": "percentage",
        "author_email": row.author,
        "annotations": dict(row.annotations or {}),
        "versions": [{"version_id": row.version_id, "percentage": 100}],
    }


class ScriptBase:
    """The state and helpers of ScriptService, split by concern across its base classes."""

    def __init__(self, ctx: ServiceContext, assets: AssetService):
        self.ctx = ctx
        self.assets = assets

    @staticmethod
    def _author(principal: Principal | None, account: Account) -> str:
        if principal is not None and principal.email:
            return principal.email
        return f"{account.name}@{'temporary' if account.kind == 'temporary' else 'account'}"

    @staticmethod
    def _script_row(conn: Connection, account_id: str, name: str) -> Any:
        return named_row(conn, scripts.c.name, account_id, name)

    def _require_script(self, conn: Connection, account_id: str, name: str) -> Any:
        row = self._script_row(conn, account_id, name)
        if row is None:
            raise ScriptNotFound(f"This Worker does not exist on your account: {name!r}.")
        return row

    def _hosts(self, account: Account, script_names: list[str]) -> list[str]:
        return [self.ctx.worker_host(s, account.name) for s in script_names]

    async def _invalidate(self, account: Account, script_names: list[str]) -> None:
        await self.ctx.invalidator.invalidate(self._hosts(account, script_names))

    def _version_row(self, conn: Connection, script_id: str, version_id: str) -> Any:
        return conn.execute(
            select(versions).where(versions.c.id == version_id, versions.c.script_id == script_id)
        ).first()

    def _render(self, conn: Connection, row: Any, account: Account) -> dict[str, Any]:
        """From what the upload stored; only versions stored before migration 0004 (no
        `handlers`) have their main module read and scanned again."""
        handlers = row.handlers
        if handlers is None:
            main = conn.execute(
                select(modules.c.blob_sha256).where(
                    modules.c.version_id == row.id, modules.c.name == row.main_module
                )
            ).scalar_one_or_none()
            handlers = detect_handlers(self.ctx.blobs.get(conn, account.id, main)) if main else []
        return render_version(row, handlers, row.author or self._author(None, account))

    def _deploy(
        self,
        conn: Connection,
        script_row: Any,
        version_id: str,
        *,
        annotations: dict[str, str],
        author: str,
        source: str,
        now: datetime,
    ) -> dict[str, Any]:
        deployment_id = str(uuid.uuid4())
        last = conn.execute(
            select(func.max(deployments.c.created_at)).where(
                deployments.c.script_id == script_row.id
            )
        ).scalar_one_or_none()
        if last is not None and as_utc(last) >= now:
            # Deployments are ordered by created_on (wrangler sorts the strings): keep it strict.
            now = as_utc(last) + timedelta(microseconds=1)
        conn.execute(
            insert(deployments).values(
                id=deployment_id,
                script_id=script_row.id,
                account_id=script_row.account_id,
                version_id=version_id,
                created_at=now,
                annotations=annotations,
                source=source,
                author=author,
            )
        )
        conn.execute(
            update(scripts)
            .where(scripts.c.id == script_row.id)
            .values(
                current_deployment_id=deployment_id, current_version_id=version_id, updated_at=now
            )
        )
        row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).one()
        return render_deployment(row)

    def _prune_versions(
        self, conn: Connection, account: Account, script_row: Any, keep_room: int
    ) -> tuple[int, list[str]]:
        """Delete the oldest versions that are not deployed until the Worker has room for
        `keep_room` more; returns how many went, and the undeployed ones left (oldest first)."""
        limit = quotas.quota_for(self.ctx.settings, account.kind).versions_per_worker
        ids = list(
            conn.execute(
                select(versions.c.id)
                .where(versions.c.script_id == script_row.id)
                .order_by(versions.c.number)
            ).scalars()
        )
        undeployed = [v for v in ids if v != script_row.current_version_id]
        doomed = undeployed[: max(0, len(ids) + keep_room - limit)]
        delete_version_rows(conn, doomed)
        return len(doomed), undeployed[len(doomed) :]

    def _collect_garbage(self, account_id: str) -> None:
        """After pruning: the blobs and asset files only pruned versions used (own transaction,
        so that a refused upload never deletes files)."""
        with self.ctx.db.begin() as conn:
            collect_garbage_blobs(conn, self.ctx, account_id)
