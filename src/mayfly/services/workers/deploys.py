"""Uploading a Worker's versions and deploying them (within the versions and bytes quotas)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from mayfly.errors import QuotaExceeded, ValidationError
from mayfly.model import Account, Principal
from mayfly.services.core import audit
from mayfly.services.resources import quotas
from mayfly.services.resources.asset_config import check_config
from mayfly.services.workers.cleanup import delete_version_rows
from mayfly.services.workers.script_base import ScriptBase, check_script_name
from mayfly.services.workers.uploads import UploadPlan
from mayfly.services.workers.versions import (
    PreparedCode,
    prepare_code,
    resolve_bindings,
    store_version,
)
from mayfly.storage.tables import scripts, versions


@dataclass(frozen=True)
class Uploaded:
    version: dict[str, Any]
    deployment: dict[str, Any] | None
    messages: list[str]
    created_script: bool


class ScriptDeploys(ScriptBase):
    """Upload a version (deployed or not), deploy a stored one."""

    async def upload(
        self,
        principal: Principal,
        account: Account,
        name: str,
        plan: UploadPlan,
        *,
        deploy: bool,
        strict_inherit: bool = False,
        triggered_by: str = "upload",
    ) -> Uploaded:
        check_script_name(name)
        result = await asyncio.to_thread(
            self._upload_sync, principal, account, name, plan, deploy, strict_inherit, triggered_by
        )
        if deploy:
            await self._invalidate(account, [name])
        return result

    def _upload_sync(
        self,
        principal: Principal,
        account: Account,
        name: str,
        plan: UploadPlan,
        deploy: bool,
        strict_inherit: bool,
        triggered_by: str,
    ) -> Uploaded:
        now = self.ctx.clock.now()
        author = self._author(principal, account)
        prepared = prepare_code(self.ctx.blobs, account.id, plan)  # slow: before the transaction
        assets_config = (  # so is parsing _redirects and _headers
            check_config(plan.assets.get("config"), plan.has_worker, plan.messages)
            if isinstance(plan.assets, dict)
            else None
        )
        try:
            with self.ctx.db.begin() as conn:
                row = self._script_row(conn, account.id, name)
                created = row is None
                if created:
                    self._check_workers_quota(conn, account)
                    conn.execute(
                        insert(scripts).values(
                            id=secrets.token_hex(16),
                            account_id=account.id,
                            name=name,
                            created_at=now,
                            updated_at=now,
                            subdomain_enabled=True,
                            settings={},
                        )
                    )
                    row = self._script_row(conn, account.id, name)
                previous = None
                if row.current_version_id:
                    previous = conn.execute(
                        select(versions.c.bindings).where(versions.c.id == row.current_version_id)
                    ).scalar_one()
                assets = self.assets.resolve_for_version(
                    conn, account, name, plan.assets, plan.has_worker, plan.messages, assets_config
                )
                bindings = resolve_bindings(
                    conn,
                    self.ctx.crypto,
                    account.id,
                    plan,
                    previous,
                    strict_inherit,
                    has_assets=assets is not None,
                )
                plan.annotations.setdefault("workers/triggered_by", triggered_by)
                pruned = self._make_room(conn, account, row, plan, prepared, now, deploy)
                version_id = store_version(
                    conn,
                    self.ctx.blobs,
                    account_id=account.id,
                    script_id=row.id,
                    plan=plan,
                    bindings=bindings,
                    source="wrangler",
                    now=now,
                    prepared=prepared,
                    author=author,
                    assets=assets,
                )
                deployment = None
                if deploy:
                    deploy_annotations = {
                        k: v for k, v in plan.annotations.items() if k == "workers/message"
                    }
                    deploy_annotations["workers/triggered_by"] = (
                        "secret" if triggered_by == "secret" else "deployment"
                    )
                    deployment = self._deploy(
                        conn,
                        row,
                        version_id,
                        annotations=deploy_annotations,
                        author=author,
                        source="api",
                        now=now,
                    )
                audit.record(
                    conn,
                    account.id,
                    "version.uploaded",
                    author,
                    now,
                    script=name,
                    version_id=version_id,
                )
                if deploy:
                    audit.record(
                        conn,
                        account.id,
                        "script.deployed",
                        author,
                        now,
                        script=name,
                        version_id=version_id,
                    )
                version_row = self._version_row(conn, row.id, version_id)
                version = self._render(conn, version_row, account)
        except IntegrityError as exc:
            raise ValidationError(f"Concurrent upload to Worker {name!r}; retry.") from exc
        if pruned:
            self._collect_garbage(account.id)
        return Uploaded(version, deployment, plan.messages, created)

    # -- quotas ----------------------------------------------------------------------------------

    def _check_workers_quota(self, conn: Connection, account: Account) -> None:
        quotas.require_room(conn, self.ctx.settings, account.id, account.kind, quotas.WORKERS)

    def _make_room(
        self,
        conn: Connection,
        account: Account,
        script_row: Any,
        plan: UploadPlan,
        prepared: PreparedCode,
        now: datetime,
        deploy: bool,
    ) -> bool:
        """Before a new version is stored: prune old versions past the versions-per-Worker quota,
        then as many more of this Worker's undeployed versions as the stored-bytes quota needs
        (agents iterating fast never have to clean up); a deploy replaces the deployed version,
        so that one goes last. 10440 when that is not enough; the caller's transaction then
        undoes the pruning. Returns whether anything was pruned."""
        count, remaining = self._prune_versions(conn, account, script_row, keep_room=1)
        if deploy and script_row.current_version_id is not None:
            remaining.append(script_row.current_version_id)
        pruned = count > 0
        sizes = dict(zip(prepared.digests, [len(m.data) for m in plan.modules], strict=True))
        timestamp = int(now.timestamp())
        while True:
            # Again after each pruning: code the upload shared with a pruned version is new again.
            adding = quotas.new_code_bytes(conn, account.id, sizes)
            try:
                quotas.require_bytes(
                    conn, self.ctx.settings, account.id, account.kind, adding, timestamp
                )
                return pruned
            except QuotaExceeded:
                if not remaining:
                    raise
                delete_version_rows(conn, [remaining.pop(0)])
                pruned = True

    async def create_deployment(
        self, principal: Principal, account: Account, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        result = await asyncio.to_thread(
            self._create_deployment_sync, principal, account, name, body
        )
        await self._invalidate(account, [name])
        return result

    def _create_deployment_sync(
        self, principal: Principal, account: Account, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        entries = body.get("versions")
        if not isinstance(entries, list) or not entries:
            raise ValidationError("A deployment needs versions: [{version_id, percentage: 100}].")
        if (
            len(entries) != 1
            or not isinstance(entries[0], dict)
            or entries[0].get("percentage", 100) != 100
        ):
            raise ValidationError(
                "Gradual deployments are not supported: deploy one version at percentage 100."
            )
        version_id = entries[0].get("version_id")
        annotations = body.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ValidationError("annotations must be an object.")
        now = self.ctx.clock.now()
        author = self._author(principal, account)
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            if (
                not isinstance(version_id, str)
                or self._version_row(conn, row.id, version_id) is None
            ):
                raise ValidationError(f"Version {version_id!r} does not belong to Worker {name!r}.")
            clean = {str(k): str(v) for k, v in annotations.items() if v is not None}
            clean.setdefault("workers/triggered_by", "deployment")
            deployment = self._deploy(
                conn, row, version_id, annotations=clean, author=author, source="api", now=now
            )
            audit.record(
                conn, account.id, "script.deployed", author, now, script=name, version_id=version_id
            )
        return deployment
