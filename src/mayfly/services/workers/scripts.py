"""Workers (scripts): upload versions, deploy them, list, delete, settings and secrets."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import (
    NotFound,
    QuotaExceeded,
    ScriptNotFound,
    SecretNotFound,
    ValidationError,
)
from mayfly.model import Account, Principal, as_utc, iso
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.identity.accounts import get_account
from mayfly.services.resources import quotas
from mayfly.services.resources.assets import AssetService, check_config
from mayfly.services.workers.cleanup import (
    collect_garbage_blobs,
    delete_script_rows,
    delete_version_rows,
)
from mayfly.services.workers.uploads import (
    BINDING_NAME_RE,
    DEFAULT_COMPATIBILITY_DATE,
    Module,
    UploadPlan,
)
from mayfly.services.workers.versions import (
    PreparedCode,
    copy_version,
    detect_handlers,
    load_modules,
    prepare_code,
    public_binding,
    render_version,
    resolve_bindings,
    store_version,
)
from mayfly.storage.tables import (
    deployments,
    modules,
    scripts,
    versions,
)

SCRIPT_NAME_MAX = 63


def check_script_name(name: str) -> None:
    if not re.match(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$", name):
        raise ValidationError(
            f"Worker name {name!r} must be 1-63 lowercase letters, digits, '-' or '_', "
            "starting and ending with a letter or digit."
        )


def check_script_settings(body: dict[str, Any]) -> None:
    """Each setting has the type Cloudflare gives it, or nothing is stored (a 400)."""
    if not isinstance(body.get("logpush", False), bool):
        raise ValidationError("`logpush` must be true or false.")
    if not isinstance(body.get("observability", {}), dict):
        raise ValidationError('`observability` must be an object, like {"enabled": true}.')
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValidationError("`tags` must be an array of strings.")
    consumers = body.get("tail_consumers", [])
    if not isinstance(consumers, list) or not all(
        isinstance(c, dict) and isinstance(c.get("service"), str) for c in consumers
    ):
        raise ValidationError('`tail_consumers` must be an array of {"service": "<Worker>"}.')


@dataclass(frozen=True)
class Uploaded:
    version: dict[str, Any]
    deployment: dict[str, Any] | None
    messages: list[str]
    created_script: bool


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


class ScriptService:
    def __init__(self, ctx: ServiceContext, assets: AssetService):
        self.ctx = ctx
        self.assets = assets

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _author(principal: Principal | None, account: Account) -> str:
        if principal is not None and principal.email:
            return principal.email
        return f"{account.name}@{'temporary' if account.kind == 'temporary' else 'account'}"

    @staticmethod
    def _script_row(conn: Connection, account_id: str, name: str) -> Any:
        return conn.execute(
            select(scripts).where(scripts.c.account_id == account_id, scripts.c.name == name)
        ).first()

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

    # -- uploads and deployments -------------------------------------------------------------

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
        quotas.require_count(
            account.kind,
            "Workers",
            quotas.count_workers(conn, account.id),
            1,
            quotas.quota_for(self.ctx.settings, account.kind).workers,
            "Delete a Worker you no longer need (`wrangler delete <name>`).",
        )

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

    def _collect_garbage(self, account_id: str) -> None:
        """After pruning: the blobs and asset files only pruned versions used (own transaction,
        so that a refused upload never deletes files)."""
        with self.ctx.db.begin() as conn:
            collect_garbage_blobs(conn, self.ctx, account_id)

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

    # -- reads ---------------------------------------------------------------------------------

    def list_deployments(
        self, account: Account, name: str, page: int = 1, per_page: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the Worker's deployments, newest first, and how many there are in all."""
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            total = conn.execute(
                select(func.count())
                .select_from(deployments)
                .where(deployments.c.script_id == row.id)
            ).scalar_one()
            rows = conn.execute(
                select(deployments)
                .where(deployments.c.script_id == row.id)
                .order_by(deployments.c.created_at.desc(), deployments.c.id)
                .limit(per_page)
                .offset((page - 1) * per_page)
            ).all()
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
            total = conn.execute(
                select(func.count()).select_from(versions).where(versions.c.script_id == row.id)
            ).scalar_one()
            rows = conn.execute(
                select(versions)
                .where(versions.c.script_id == row.id)
                .order_by(versions.c.number.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            ).all()
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

    def list_scripts(self, account: Account) -> list[Any]:
        with self.ctx.db.read() as conn:
            return list(
                conn.execute(
                    select(scripts)
                    .where(scripts.c.account_id == account.id)
                    .order_by(scripts.c.name)
                ).all()
            )

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

    def settings(self, account: Account, name: str) -> dict[str, Any]:
        row, version = self.current(account, name)
        runtime = version["resources"]["script_runtime"] if version else {}
        return {
            "bindings": self.current_bindings(account, name),
            "compatibility_date": runtime.get("compatibility_date", DEFAULT_COMPATIBILITY_DATE),
            "compatibility_flags": runtime.get("compatibility_flags", []),
            "usage_model": "standard",
            "logpush": bool((row.settings or {}).get("logpush", False)),
            "observability": (row.settings or {}).get("observability", {"enabled": False}),
            "tags": (row.settings or {}).get("tags", []),
            "tail_consumers": (row.settings or {}).get("tail_consumers", []),
        }

    def patch_settings(self, account: Account, name: str, body: dict[str, Any]) -> dict[str, Any]:
        allowed = {"observability", "tags", "logpush", "tail_consumers"}
        unknown = set(body) - allowed
        if unknown:
            raise ValidationError(f"Unsupported script settings: {', '.join(sorted(unknown))}.")
        check_script_settings(body)
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            merged = {**(row.settings or {}), **body}
            conn.execute(update(scripts).where(scripts.c.id == row.id).values(settings=merged))
        return self.settings(account, name)

    async def set_subdomain_enabled(
        self, account: Account, name: str, enabled: bool
    ) -> dict[str, bool]:
        def change() -> None:
            with self.ctx.db.begin() as conn:
                row = self._require_script(conn, account.id, name)
                conn.execute(
                    update(scripts).where(scripts.c.id == row.id).values(subdomain_enabled=enabled)
                )

        await asyncio.to_thread(change)
        await self._invalidate(account, [name])
        return {"enabled": enabled, "previews_enabled": False}

    # -- secrets -------------------------------------------------------------------------------

    async def put_secret(
        self, principal: Principal, account: Account, name: str, body: dict[str, Any]
    ) -> dict[str, str]:
        secret_name, text = body.get("name"), body.get("text")
        kind = body.get("type", "secret_text")
        if kind != "secret_text":
            raise ValidationError(f"Secret type {kind!r} is not supported; use secret_text.")
        if not isinstance(secret_name, str) or not BINDING_NAME_RE.match(secret_name):
            raise ValidationError(f"Secret name {secret_name!r} is not a valid identifier.")
        if not isinstance(text, str):
            raise ValidationError("A secret needs a string `text`.")
        binding = {
            "name": secret_name,
            "type": "secret_text",
            "ciphertext": self.ctx.crypto.encrypt(text),
        }
        await asyncio.to_thread(
            self._change_bindings, principal, account, name, secret_name, binding
        )
        await self._invalidate(account, [name])
        return {"name": secret_name, "type": "secret_text"}

    async def delete_secret(
        self, principal: Principal, account: Account, name: str, secret_name: str
    ) -> None:
        await asyncio.to_thread(self._change_bindings, principal, account, name, secret_name, None)
        await self._invalidate(account, [name])

    def _change_bindings(
        self,
        principal: Principal,
        account: Account,
        name: str,
        binding_name: str,
        replacement: dict[str, Any] | None,
    ) -> str:
        """A secret change is a new version (same code) deployed at once, as on Cloudflare."""
        now = self.ctx.clock.now()
        author = self._author(principal, account)
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            current = self._version_row(conn, row.id, row.current_version_id or "")
            if current is None:
                raise ScriptNotFound(f"Worker {name!r} has no deployed version.")
            old = list(current.bindings or [])
            if replacement is None and not any(
                b["name"] == binding_name and b["type"] == "secret_text" for b in old
            ):
                raise SecretNotFound(f"Worker {name!r} has no secret named {binding_name!r}.")
            bindings = [b for b in old if b["name"] != binding_name]
            if replacement is not None:
                bindings.append(replacement)
            pruned, _ = self._prune_versions(conn, account, row, keep_room=1)
            version_id = copy_version(
                conn, current, bindings, {"workers/triggered_by": "secret"}, now, author
            )
            self._deploy(
                conn,
                row,
                version_id,
                annotations={"workers/triggered_by": "secret"},
                author=author,
                source="api",
                now=now,
            )
            event = "secret.deleted" if replacement is None else "secret.put"
            audit.record(conn, account.id, event, author, now, script=name, secret=binding_name)
        if pruned:
            self._collect_garbage(account.id)
        return version_id

    async def patch_secrets(
        self,
        principal: Principal,
        account: Account,
        name: str,
        changes: Any,
        *,
        deploy: bool,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Several secrets set (`{name: {text, type}}`) or removed (`{name: null}`) in one new
        version, as a JSON merge patch: `secret bulk` deploys it (based on the deployed version),
        `versions secret put|bulk|delete` only uploads it (based on the newest version)."""
        if not isinstance(changes, dict) or not changes:
            raise ValidationError("Send the secrets as an object: {name: {text, type} or null}.")
        replacements: dict[str, dict[str, Any] | None] = {}
        for secret_name, change in changes.items():
            if not BINDING_NAME_RE.match(secret_name):
                raise ValidationError(f"Secret name {secret_name!r} is not a valid identifier.")
            if change is None:
                replacements[secret_name] = None
                continue
            if not isinstance(change, dict) or not isinstance(change.get("text"), str):
                raise ValidationError(f"Secret {secret_name!r} needs a string `text` (or null).")
            if change.get("type", "secret_text") != "secret_text":
                raise ValidationError(f"Secret {secret_name!r}: only secret_text is supported.")
            replacements[secret_name] = {
                "name": secret_name,
                "type": "secret_text",
                "ciphertext": self.ctx.crypto.encrypt(change["text"]),
            }
        version = await asyncio.to_thread(
            self._patch_secrets_sync, principal, account, name, replacements, deploy, annotations
        )
        if deploy:
            await self._invalidate(account, [name])
        return version

    def _patch_secrets_sync(
        self,
        principal: Principal,
        account: Account,
        name: str,
        replacements: dict[str, dict[str, Any] | None],
        deploy: bool,
        annotations: dict[str, str] | None,
    ) -> dict[str, Any]:
        now = self.ctx.clock.now()
        author = self._author(principal, account)
        marks = {"workers/triggered_by": "secret", **(annotations or {})}
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            if deploy:
                base = self._version_row(conn, row.id, row.current_version_id or "")
            else:
                base = conn.execute(
                    select(versions)
                    .where(versions.c.script_id == row.id)
                    .order_by(versions.c.number.desc())
                    .limit(1)
                ).first()
            if base is None:
                raise ScriptNotFound(f"Worker {name!r} has no version to add secrets to.")
            bindings = [b for b in base.bindings or [] if b["name"] not in replacements]
            bindings += [b for b in replacements.values() if b is not None]
            pruned, _ = self._prune_versions(conn, account, row, keep_room=1)
            version_id = copy_version(conn, base, bindings, marks, now, author)
            if deploy:
                self._deploy(
                    conn,
                    row,
                    version_id,
                    annotations={"workers/triggered_by": "secret"},
                    author=author,
                    source="api",
                    now=now,
                )
            audit.record(
                conn,
                account.id,
                "secret.bulk",
                author,
                now,
                script=name,
                secret=",".join(replacements),
            )
            rendered = self._render(conn, self._version_row(conn, row.id, version_id), account)
        if pruned:
            self._collect_garbage(account.id)
        return rendered

    def script_modules(self, account: Account, name: str) -> tuple[str, list[Module]]:
        """The deployed version's main module name and its modules (10007 without one)."""
        with self.ctx.db.read() as conn:
            row = self._require_script(conn, account.id, name)
            current = self._version_row(conn, row.id, row.current_version_id or "")
            if current is None:
                raise ScriptNotFound(f"Worker {name!r} has no deployed version.")
            return current.main_module, load_modules(conn, self.ctx.blobs, account.id, current.id)

    # -- delete ----------------------------------------------------------------------------------

    async def delete(self, principal: Principal | None, account: Account, name: str) -> None:
        await asyncio.to_thread(self._delete_sync, principal, account, name)
        await self._invalidate(account, [name])

    def _delete_sync(self, principal: Principal | None, account: Account, name: str) -> None:
        now = self.ctx.clock.now()
        with self.ctx.db.begin() as conn:
            row = self._require_script(conn, account.id, name)
            delete_script_rows(conn, row.id)
            collect_garbage_blobs(conn, self.ctx, account.id)
            audit.record(
                conn,
                account.id,
                "script.deleted",
                self._author(principal, account),
                now,
                script=name,
            )

    def account_of(self, account_id: str) -> Account | None:
        with self.ctx.db.read() as conn:
            return get_account(conn, account_id)
