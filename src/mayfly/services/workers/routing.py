"""What the data plane asks: which version serves a host, and that version's code and bindings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select

from mayfly.errors import NotFound
from mayfly.model import Route, as_utc
from mayfly.services.context import ServiceContext
from mayfly.services.resources.assets import AssetService
from mayfly.services.workers.tail import TailHub
from mayfly.services.workers.versions import load_modules, module_payload
from mayfly.storage.tables import (
    account_quarantines,
    accounts,
    moved_hosts,
    quarantines,
    scripts,
    tombstones,
    versions,
)

EXPIRED_MESSAGE = "This temporary deployment expired and was deleted."
MOVED_MESSAGE = "This Worker was claimed and moved; it now lives at"
QUARANTINED_MESSAGE = (
    "This Worker is quarantined: it took down the server it ran on, so it is paused for a while."
)
ACCOUNT_QUARANTINED_MESSAGE = (
    "This Worker's account is quarantined: several of its Workers took down the servers they ran "
    "on, so all of them are paused for a while."
)
SUSPENDED_MESSAGE = "This Worker's account is suspended by the platform's operator."
# A suspended account's Workers answer 503 (`x-mayfly-error: suspended`), asking callers to retry
# after this long; the data plane asks again when that time is over.
SUSPENDED_RETRY = timedelta(seconds=60)


class RoutingService:
    def __init__(self, ctx: ServiceContext, tails: TailHub, assets: AssetService):
        self.ctx = ctx
        self.tails = tails
        self.assets = assets

    def split_host(self, host: str) -> tuple[str, str] | None:
        host = host.strip().lower().rstrip(".")
        if host.startswith("["):
            return None
        host = host.rsplit(":", 1)[0] if ":" in host else host
        suffix = "." + self.ctx.settings.domain.lower()
        if not host.endswith(suffix):
            return None
        labels = host[: -len(suffix)].split(".")
        if len(labels) != 2 or not all(labels):
            return None
        return labels[0], labels[1]

    def route(self, host: str) -> Route:
        parts = self.split_host(host)
        if parts is None:
            return Route(status="unknown", message=f"No Worker is served at {host}.")
        script_name, account_name = parts
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            # The account's running quarantine comes with it (one statement).
            account = conn.execute(
                select(
                    accounts.c.id,
                    accounts.c.expires_at,
                    accounts.c.suspended_at,
                    account_quarantines.c.until.label("quarantined_until"),
                )
                .select_from(
                    accounts.outerjoin(
                        account_quarantines,
                        (account_quarantines.c.account_id == accounts.c.id)
                        & (account_quarantines.c.until > now)
                        & account_quarantines.c.lifted_at.is_(None),
                    )
                )
                .where(accounts.c.name == account_name)
            ).first()
            if account is None:
                moved = self._moved(conn, script_name, account_name)
                if moved is not None:
                    return moved
                tomb = conn.execute(
                    select(tombstones.c.account_id).where(tombstones.c.name == account_name)
                ).first()
                if tomb is not None:
                    return Route(status="expired", message=EXPIRED_MESSAGE)
                return Route(status="unknown", message=f"No Worker is served at {host}.")
            if account.expires_at is not None and as_utc(account.expires_at) <= now:
                return Route(status="expired", account_id=account.id, message=EXPIRED_MESSAGE)
            if account.suspended_at is not None:
                return Route(
                    status="suspended",
                    account_id=account.id,
                    script=script_name,
                    message=SUSPENDED_MESSAGE,
                    quarantined_until=now + SUSPENDED_RETRY,
                )
            # The Worker's running quarantine comes with it (one statement on the serving path).
            script = conn.execute(
                select(
                    scripts.c.current_version_id,
                    scripts.c.subdomain_enabled,
                    quarantines.c.until.label("quarantined_until"),
                )
                .select_from(
                    scripts.outerjoin(
                        quarantines,
                        (quarantines.c.account_id == scripts.c.account_id)
                        & (quarantines.c.script == scripts.c.name)
                        & (quarantines.c.until > now)
                        & quarantines.c.lifted_at.is_(None),
                    )
                )
                .where(scripts.c.account_id == account.id, scripts.c.name == script_name)
            ).first()
            if script is None:
                moved = self._moved(conn, script_name, account_name)
                if moved is not None:
                    return moved
            elif script.current_version_id is not None and account.quarantined_until is not None:
                return Route(
                    status="quarantined",
                    account_id=account.id,
                    script=script_name,
                    message=ACCOUNT_QUARANTINED_MESSAGE,
                    quarantined_until=max(
                        as_utc(account.quarantined_until),
                        as_utc(script.quarantined_until or account.quarantined_until),
                    ),
                )
            elif script.current_version_id is not None and script.quarantined_until is not None:
                return Route(
                    status="quarantined",
                    account_id=account.id,
                    script=script_name,
                    message=QUARANTINED_MESSAGE,
                    quarantined_until=as_utc(script.quarantined_until),
                )
        if script is None or script.current_version_id is None:
            return Route(status="unknown", message=f"No Worker is served at {host}.")
        if not script.subdomain_enabled:
            return Route(status="disabled", message=f"The Worker at {host} is not enabled.")
        return Route(
            status="ok",
            account_id=account.id,
            script=script_name,
            version_id=script.current_version_id,
            expires_at=account.expires_at,
            tail=self.tails.is_tailed(account.id, script_name),
        )

    def _moved(self, conn: Connection, script_name: str, account_name: str) -> Route | None:
        """A Worker moved into another account when its temporary account was claimed."""
        new_url = conn.execute(
            select(moved_hosts.c.new_url).where(
                moved_hosts.c.old_host == self.ctx.worker_host(script_name, account_name)
            )
        ).scalar_one_or_none()
        if new_url is None:
            return None
        return Route(status="moved", message=f"{MOVED_MESSAGE} {new_url}")

    def route_with_code(self, host: str, have: str = "") -> dict[str, Any]:
        """The route's answer and, when it serves a version other than `have` (the one the asking
        shard already holds), that version's code: a Worker never seen loads in one round trip."""
        found = self.route(host)
        answer = found.to_json()
        if found.status == "ok" and found.version_id and found.version_id != have:
            try:
                answer["version"] = self.version_code(found.version_id)
            except NotFound:
                pass  # deleted meanwhile: the shard asks for it (and gets the 404) on its own
        return answer

    def live_routes(self) -> dict[str, dict[str, Any]] | None:
        """Every host that serves a version now (status "ok"), as `route` answers it: the snapshot a
        shard starts with. None when tails are shared between replicas (whether a Worker is tailed
        elsewhere costs a query per Worker): such shards ask for each host."""
        if self.tails.shared is not None:
            return None
        now = self.ctx.clock.now()
        running = (
            select(quarantines.c.account_id, quarantines.c.script)
            .where(quarantines.c.until > now, quarantines.c.lifted_at.is_(None))
            .subquery()
        )
        paused = (
            select(account_quarantines.c.account_id)
            .where(account_quarantines.c.until > now, account_quarantines.c.lifted_at.is_(None))
            .subquery()
        )
        query = (
            select(
                accounts.c.id,
                accounts.c.name,
                accounts.c.expires_at,
                scripts.c.name.label("script"),
                scripts.c.current_version_id,
            )
            .join(scripts, scripts.c.account_id == accounts.c.id)
            .outerjoin(
                running,
                (running.c.account_id == scripts.c.account_id)
                & (running.c.script == scripts.c.name),
            )
            .outerjoin(paused, paused.c.account_id == accounts.c.id)
            .where(
                accounts.c.suspended_at.is_(None),
                (accounts.c.expires_at.is_(None)) | (accounts.c.expires_at > now),
                scripts.c.current_version_id.is_not(None),
                scripts.c.subdomain_enabled.is_(True),
                running.c.account_id.is_(None),
                paused.c.account_id.is_(None),
            )
        )
        with self.ctx.db.read() as conn:
            rows = conn.execute(query).all()
        return {
            self.ctx.worker_host(row.script, row.name): Route(
                status="ok",
                account_id=row.id,
                script=row.script,
                version_id=row.current_version_id,
                expires_at=row.expires_at,
                tail=self.tails.is_tailed(row.id, row.script),
            ).to_json()
            for row in rows
        }

    def service_host(self, script_id: str, caller_version_id: str) -> str:
        """Where a service binding's target lives now: a Worker of the calling version's account
        (a claim moves both and may rename the target; the id stays)."""
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(scripts.c.name, accounts.c.name.label("account_name"))
                .join(accounts, accounts.c.id == scripts.c.account_id)
                .join(versions, versions.c.account_id == scripts.c.account_id)
                .where(scripts.c.id == script_id, versions.c.id == caller_version_id)
            ).first()
        if row is None:
            raise NotFound("No such Worker in the caller's account.")
        return self.ctx.worker_host(row.name, row.account_name)

    def version_code(self, version_id: str) -> dict[str, Any]:
        """Everything the dispatcher needs to load a version: modules, env, bindings."""
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(versions, scripts.c.name.label("script_name"))
                .join(scripts, scripts.c.id == versions.c.script_id)
                .where(versions.c.id == version_id)
            ).first()
            if row is None:
                raise NotFound(f"version {version_id} not found")
            mods = load_modules(conn, self.ctx.blobs, row.account_id, version_id)
            assets = None
            if row.assets is not None:
                manifest: dict[str, str] = row.assets.get("manifest", {})
                types = self.assets.content_types(
                    conn, row.account_id, sorted(set(manifest.values()))
                )
                assets = {
                    "config": row.assets.get("config", {}),
                    "manifest": {
                        path: {"hash": digest, "content_type": types.get(digest)}
                        for path, digest in manifest.items()
                    },
                }
        env: dict[str, Any] = {}
        kv: list[dict[str, str]] = []
        d1: list[dict[str, str]] = []
        r2: list[dict[str, str]] = []
        services: list[dict[str, Any]] = []
        assets_binding: str | None = None
        for binding in row.bindings or []:
            kind = binding["type"]
            if kind == "plain_text":
                env[binding["name"]] = binding["text"]
            elif kind == "json":
                env[binding["name"]] = binding["json"]
            elif kind == "secret_text":
                env[binding["name"]] = self.ctx.crypto.decrypt(binding["ciphertext"])
            elif kind == "kv_namespace":
                kv.append({"name": binding["name"], "namespace_id": binding["namespace_id"]})
            elif kind == "d1":
                d1.append({"name": binding["name"], "database_id": binding["id"]})
            elif kind == "assets":
                assets_binding = binding["name"]
            elif kind == "r2_bucket":
                r2.append({"name": binding["name"], "bucket_id": binding["bucket_id"]})
            elif kind == "service":
                services.append(
                    {
                        "name": binding["name"],
                        "script_id": binding["script_id"],
                        "service": binding["service"],
                        "entrypoint": binding.get("entrypoint"),
                    }
                )
        return {
            "version_id": version_id,
            "account_id": row.account_id,
            "script": row.script_name,
            "main_module": row.main_module,
            "compatibility_date": row.compatibility_date,
            "compatibility_flags": list(row.compatibility_flags or []),
            "modules": [module_payload(m) for m in mods if m.kind != "sourcemap"],
            "env": env,
            "kv_namespaces": kv,
            "d1_databases": d1,
            "r2_buckets": r2,
            "services": services,
            "has_worker": bool(row.main_module),
            "assets": assets,
            "assets_binding": assets_binding,
        }
