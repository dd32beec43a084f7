"""Deploy a Worker: credentials and account (session.py), then, inside the account:

1. KV bindings without an id get a namespace, as wrangler provisions them: the one the Worker's
   binding already uses (W7), else the namespace titled `<worker>-<binding lowercased>`, else a new
   one with that title; so a redeploy reuses what the first deploy created.
2. R2 bindings name a bucket: one the account does not have yet is created (as wrangler does).
   D1 bindings without an id get one: the database named `database_name`, else the one the
   Worker's binding already uses, else `<worker>-<binding>`; created when missing (as wrangler).
3. Static assets: only what the server is missing is uploaded (assets.py).
4. PUT the script (stores a version and deploys it), then read the Worker's URL.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from mayfly.sdk.assets import upload_assets
from mayfly.sdk.client import MayflyClient
from mayfly.sdk.credentials import Credentials, Resolution, TemporaryAccountCache
from mayfly.sdk.errors import SCRIPT_NOT_FOUND, MayflyAPIError
from mayfly.sdk.models import AccountInfo
from mayfly.sdk.provisioning import QuietListener
from mayfly.sdk.session import (
    NO_CREDENTIALS,
    TEMPORARY_CONFLICT,
    AccountSession,
    account_for,
)
from mayfly.sdk.worker_models import (
    AssetUpload,
    Deployment,
    KVBinding,
    KVNamespaceInfo,
    ProvisionedNamespace,
    WorkerUpload,
)

NAMESPACE_EXISTS = 10014
BUCKET_EXISTS, BUCKET_NOT_FOUND = 10004, 10006
D1_NOT_FOUND, D1_EXISTS = 7404, 7502

__all__ = ["NO_CREDENTIALS", "TEMPORARY_CONFLICT", "Deployer", "namespace_title"]


def namespace_title(script: str, binding: str) -> str:
    """The title wrangler gives an auto-provisioned KV namespace."""
    return f"{script}-{binding.lower()}"


class Deployer(AccountSession):
    """Deploys Workers through `client` (unauthenticated; tokens are added per credential): an
    AccountSession that also uploads, provisions and deploys."""

    @classmethod
    def quiet(cls, client: MayflyClient, cache: TemporaryAccountCache) -> Deployer:
        return cls(client, cache, QuietListener())

    @staticmethod
    def account_for(
        authed: MayflyClient, credentials: Credentials, account_id: str | None = None
    ) -> AccountInfo:
        return account_for(authed, credentials, account_id)

    def deploy(
        self,
        script: str,
        upload: WorkerUpload,
        resolution: Resolution,
        *,
        temporary: bool = False,
        account_id: str | None = None,
        kv: Sequence[KVBinding] = (),
        assets: AssetUpload | None = None,
        event_code: str | None = None,
        crons: Sequence[str] | None = None,
    ) -> Deployment:
        """Deploy `upload` as `script`, with its KV bindings and static assets. `event_code`: a
        new temporary account counts against that event (`mayfly admin event create`). `crons`:
        the Worker's cron triggers, set after the upload (an empty list removes them; None
        leaves them as they are)."""

        def action(authed: MayflyClient, account: AccountInfo) -> Deployment:
            deployment = self._deploy_to(authed, account, script, upload, kv, assets)
            if crons is None:
                return deployment
            task = f"Setting {len(crons)} cron trigger(s)"
            self.listener.begin(task)
            started = time.perf_counter()
            stored = authed.workers.put_schedules(account.id, script, crons)
            self.listener.end(task, time.perf_counter() - started)
            return dataclasses.replace(deployment, crons=tuple(stored))

        ran = self.run(
            resolution, action, temporary=temporary, account_id=account_id, event_code=event_code
        )
        return dataclasses.replace(
            ran.value,
            temporary=ran.temporary,
            created_account=ran.created_account,
            notices=ran.notices,
        )

    def _deploy_to(
        self,
        authed: MayflyClient,
        account: AccountInfo,
        script: str,
        upload: WorkerUpload,
        kv: Sequence[KVBinding],
        assets: AssetUpload | None,
    ) -> Deployment:
        namespaces = self._namespaces(authed, account, script, kv)
        self._buckets(authed, account, upload.bindings)
        bindings = self._databases(authed, account, script, upload.bindings)
        bindings += [
            {"name": n.binding, "type": "kv_namespace", "namespace_id": n.id} for n in namespaces
        ]
        uploaded_assets = None
        if assets is not None:
            started = time.perf_counter()
            completion, uploaded_assets = upload_assets(
                authed, account.id, script, assets, self.listener
            )
            self.timings.add("assets", time.perf_counter() - started)
            upload = dataclasses.replace(
                upload, assets={"jwt": completion, "config": assets.config}
            )
            if assets.binding and upload.main_module is not None:
                bindings.append({"name": assets.binding, "type": "assets"})
        upload = dataclasses.replace(upload, bindings=tuple(bindings))
        what = (
            f"{len(upload.modules)} modules, {_size(upload.size)}" if upload.modules else "assets"
        )
        task = f"Uploading {script} ({what})"
        self.listener.begin(task)
        started = time.perf_counter()
        uploaded = authed.upload_script(account.id, script, upload)
        worker = authed.get_worker(account.id, script)
        elapsed = time.perf_counter() - started
        self.timings.add("upload", elapsed)
        self.listener.end(task, elapsed)
        return Deployment(
            script=script,
            version_id=uploaded.version_id,
            url=worker.url or uploaded.url,
            account=account,
            messages=uploaded.messages,
            kv_namespaces=tuple(namespaces),
            assets=uploaded_assets,
        )

    def _namespaces(
        self, authed: MayflyClient, account: AccountInfo, script: str, kv: Sequence[KVBinding]
    ) -> list[ProvisionedNamespace]:
        out = [ProvisionedNamespace(k.binding, k.id, None, "configured") for k in kv if k.id]
        missing = [k for k in kv if not k.id]
        if not missing:
            return out
        started = time.perf_counter()
        existing = {n.id: n for n in authed.kv.list_namespaces(account.id)}
        current = self._current_bindings(authed, account, script, "kv_namespace", "namespace_id")
        for binding in missing:
            namespace_id = current.get(binding.binding)
            if namespace_id in existing:
                found = existing[namespace_id]
                out.append(ProvisionedNamespace(binding.binding, found.id, found.title, "existing"))
                continue
            title = namespace_title(script, binding.binding)
            found_by_title = next((n for n in existing.values() if n.title == title), None)
            if found_by_title is not None:
                out.append(
                    ProvisionedNamespace(binding.binding, found_by_title.id, title, "existing")
                )
                continue
            created = self._create_namespace(authed, account, title)
            existing[created.id] = created
            self.listener.notice(
                f"KV binding {binding.binding}: created the namespace {title} ({created.id})."
            )
            out.append(ProvisionedNamespace(binding.binding, created.id, title, "created"))
        self.timings.add("kv", time.perf_counter() - started)
        return out

    def _buckets(
        self, authed: MayflyClient, account: AccountInfo, bindings: Sequence[dict[str, Any]]
    ) -> None:
        """Create the buckets R2 bindings name that the account does not have yet."""
        for binding in bindings:
            if binding.get("type") != "r2_bucket":
                continue
            name = str(binding["bucket_name"])
            path = f"/accounts/{account.id}/r2/buckets"
            try:
                authed.call("GET", f"{path}/{name}")
                continue
            except MayflyAPIError as exc:
                if exc.code != BUCKET_NOT_FOUND:
                    raise
            try:
                authed.call("POST", path, json={"name": name})
            except MayflyAPIError as exc:
                if exc.code != BUCKET_EXISTS:  # another deploy created it meanwhile
                    raise
                continue
            self.listener.notice(f"R2 binding {binding['name']}: created the bucket {name}.")

    def _databases(
        self,
        authed: MayflyClient,
        account: AccountInfo,
        script: str,
        bindings: Sequence[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """D1 bindings with the database's id: as configured, else the database named
        `database_name`, else the one the Worker's binding already uses, else the one named
        `<worker>-<binding>` (wrangler's auto-provisioned name); created when missing."""
        out: list[dict[str, Any]] = []
        current: dict[str, str] | None = None
        for binding in bindings:
            if binding.get("type") != "d1" or binding.get("id"):
                out.append({k: v for k, v in binding.items() if k != "database_name"})
                continue
            name = binding.get("database_name")
            if not name:
                if current is None:
                    current = self._current_bindings(authed, account, script, "d1", "id")
                if binding["name"] in current:
                    out.append(
                        {"name": binding["name"], "type": "d1", "id": current[binding["name"]]}
                    )
                    continue
                name = f"{script}-{str(binding['name']).lower().replace('_', '-')}"
            path = f"/accounts/{account.id}/d1/database"
            try:
                found = authed.call("GET", f"{path}/{name}")
            except MayflyAPIError as exc:
                if exc.code != D1_NOT_FOUND:
                    raise
                try:
                    found = authed.call("POST", path, json={"name": name})
                except MayflyAPIError as again:
                    if again.code != D1_EXISTS:  # another deploy created it meanwhile
                        raise
                    found = authed.call("GET", f"{path}/{name}")
                else:
                    self.listener.notice(
                        f"D1 binding {binding['name']}: created the database {name} "
                        f"({found['uuid']})."
                    )
            out.append({"name": binding["name"], "type": "d1", "id": str(found["uuid"])})
        return out

    @staticmethod
    def _current_bindings(
        authed: MayflyClient, account: AccountInfo, script: str, kind: str, id_field: str
    ) -> dict[str, str]:
        """binding name -> the id it names, for the Worker's current bindings of `kind`."""
        try:
            settings = authed.workers.settings(account.id, script)
        except MayflyAPIError as exc:
            if exc.code == SCRIPT_NOT_FOUND:
                return {}
            raise
        return {
            str(b["name"]): str(b[id_field])
            for b in settings.get("bindings") or []
            if isinstance(b, dict) and b.get("type") == kind and id_field in b
        }

    @staticmethod
    def _create_namespace(
        authed: MayflyClient, account: AccountInfo, title: str
    ) -> KVNamespaceInfo:
        try:
            return authed.kv.create_namespace(account.id, title)
        except MayflyAPIError as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise
            # Another deploy created it meanwhile.
            found = authed.kv.find_namespace(account.id, title)
            if found is None:
                raise
            return found


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"
