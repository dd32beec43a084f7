"""What the MCP tools do, as blocking calls over `mayfly.sdk` (the tools run them in a thread).

Credentials come either from this machine (the CLI's order: MAYFLY_API_TOKEN, `mayfly login`,
the cached temporary account, else a new temporary account when a deploy asks for one), or from
one fixed API token (the remote server at /mcp, where the caller's bearer token is the only
credential and no account is ever provisioned).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import httpx

from mayfly.project import (
    CONFIG_FILES,
    AssetManifest,
    ModuleSet,
    Project,
    build_manifest,
    build_modules,
    load_project,
)
from mayfly.sdk import (
    AccountInfo,
    AccountSession,
    AssetSource,
    AssetUpload,
    Credentials,
    Deployer,
    KVBinding,
    Listener,
    MayflyAPIError,
    MayflyClient,
    Ran,
    Resolution,
    SDKError,
    TemporaryAccountCache,
    UploadModule,
    WorkerUpload,
    config_dir,
    open_websocket,
    resolve_credentials,
)
from mayfly.sdk.errors import TEMPORARY_CLAIMED, TEMPORARY_EXPIRED
from mayfly.sdk.models import WorkerDeployment, format_time
from mayfly.sdk.tail import TailConnection, events

T = TypeVar("T")
KEY_NOT_FOUND = 10009
MAX_FILES = 500
MAX_LOG_SECONDS = 120
MAX_LOG_EVENTS = 1000


class ToolFailure(SDKError):
    """A bad tool argument, reported like the API's errors (a code and what to do)."""

    code = "invalid_arguments"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Backend:
    """One agent's view of a Mayfly server. `token` fixes the credentials (remote use)."""

    api_url: str
    token: str | None = None
    directory: Path = field(default_factory=lambda: config_dir(os.environ))
    transport: httpx.BaseTransport | None = None
    clock: Callable[[], datetime] = _utcnow
    open_websocket: Callable[[str], TailConnection] = open_websocket
    remote: bool = False  # /mcp on the server: `path` would name the server's own files
    last_worker: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cache(self) -> TemporaryAccountCache:
        return TemporaryAccountCache(self.directory)

    def resolution(self) -> Resolution:
        if self.token is not None:
            return Resolution(Credentials(self.token, "--api-token"))
        return resolve_credentials(self.api_url, now=self.clock(), directory=self.directory)

    def client(self) -> MayflyClient:
        return MayflyClient(self.api_url, transport=self.transport)

    def run(
        self,
        action: Callable[[MayflyClient, AccountInfo], T],
        listener: Listener,
        *,
        temporary: bool = False,
    ) -> Ran[T]:
        resolution = self.resolution()
        source = resolution.credentials.source if resolution.credentials else None
        # A temporary account is only created when nothing else applies: an agent's default
        # `temporary=true` must not conflict with a login or a token.
        temporary = temporary and not self.remote and source in (None, "temporary")
        with self.client() as client:
            session = AccountSession(client, self.cache, listener, self.clock)
            return session.run(resolution, action, temporary=temporary)

    # -- deploy ---------------------------------------------------------------------------------

    def deploy(
        self,
        listener: Listener,
        *,
        path: str | None = None,
        files: Mapping[str, str] | None = None,
        name: str | None = None,
        main: str | None = None,
        temporary: bool = True,
    ) -> dict[str, Any]:
        if (path is None) == (files is None):
            raise ToolFailure("Pass exactly one of `path` (a project directory) and `files`.")
        if files is not None:
            with tempfile.TemporaryDirectory(prefix="mayfly-mcp-") as directory:
                root = Path(directory)
                _write_files(root, files)
                name, main = _files_target(files, name, main)
                if not any(n in CONFIG_FILES for n in files):
                    # Without it, a wrangler file in a parent of the temporary directory counts.
                    (root / "wrangler.json").write_text(json.dumps({"name": name, "main": main}))
                project = load_project(root, name=name, main=main)
                return self._deploy_project(project, listener, temporary)
        assert path is not None
        if self.remote:
            raise ToolFailure(
                "`path` is a directory on the server's machine: pass `files` instead.",
                code="path_not_allowed",
            )
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ToolFailure(f"{path} is not a directory.", code="project_invalid")
        project = load_project(root, name=name, main=main)
        return self._deploy_project(project, listener, temporary)

    def _deploy_project(
        self, project: Project, listener: Listener, temporary: bool
    ) -> dict[str, Any]:
        if self.remote:
            _confine(project)
        bundler = _no_bundling if self.remote else None
        modules = build_modules(project, bundler) if project.main is not None else None
        manifest = build_manifest(project)
        upload = WorkerUpload(
            main_module=modules.main if modules is not None else None,
            modules=tuple(UploadModule(m.name, m.data, m.content_type) for m in modules.modules)
            if modules is not None
            else (),
            compatibility_date=project.compatibility_date,
            compatibility_flags=project.compatibility_flags,
            bindings=tuple(project.bindings()),
        )
        resolution = self.resolution()
        source = resolution.credentials.source if resolution.credentials else None
        temporary = temporary and not self.remote and source in (None, "temporary")
        with self.client() as client:
            deployer = Deployer(client, self.cache, listener, self.clock)
            deployment = deployer.deploy(
                project.name,
                upload,
                resolution,
                temporary=temporary,
                account_id=project.account_id,
                kv=[KVBinding(k.binding, k.id) for k in project.kv_namespaces],
                assets=_asset_upload(manifest) if manifest is not None else None,
                crons=project.crons,
            )
        with self._lock:
            self.last_worker = deployment.script
        account, account_temporary = deployment.account, deployment.temporary
        created_or_reused = None
        if account_temporary is not None:
            created_or_reused = "created" if deployment.created_account else "reused"
        return {
            "script": deployment.script,
            "url": deployment.url,
            "claim_url": account_temporary.claim_url if account_temporary else None,
            "expires_at": format_time(account.expires_at) if account.expires_at else None,
            "account_name": account.name,
            "account_id": account.id,
            "version_id": deployment.version_id,
            "created_or_reused": created_or_reused,
            "messages": [*project.warnings, *deployment.notices, *deployment.messages],
        }

    # -- the account ----------------------------------------------------------------------------

    def status(self, listener: Listener) -> dict[str, Any]:
        """`mayfly whoami --json`'s facts about the account the credentials reach."""
        resolution = self.resolution()
        credentials = resolution.credentials
        if credentials is None:
            if resolution.expired is not None:
                self.cache.drop(self.api_url, token=resolution.expired.api_token)
                raise MayflyAPIError(
                    TEMPORARY_EXPIRED,
                    f"The temporary account {resolution.expired.name} expired at "
                    f"{format_time(resolution.expired.expires_at)}; deploy again for a new one.",
                    410,
                )
            raise ToolFailure(
                "No credentials yet: call `deploy` first (it creates a temporary account).",
                code="no_credentials",
            )
        with self.client() as client:
            authed = client.with_token(credentials.token)
            claim_url = None
            if credentials.temporary is not None:
                cached = credentials.temporary
                claim_url = cached.claim_url
                found = authed.claim_status(cached.id)
                if found.status != "unclaimed":
                    self.cache.drop(self.api_url, token=cached.api_token)
                    code = TEMPORARY_CLAIMED if found.status == "claimed" else TEMPORARY_EXPIRED
                    raise MayflyAPIError(
                        code,
                        f"The temporary account {cached.name} was {found.status}; it was "
                        "removed from the cache.",
                        410,
                    )
                account = AccountInfo(found.id, found.name, "temporary", found.expires_at)
            else:
                account = Deployer.account_for(authed, credentials)
            claim_status = None
            if account.kind == "temporary":
                claim_status = authed.claim_status(account.id).status
        left = None
        if account.expires_at is not None:
            left = max(0, round((account.expires_at - self.clock()).total_seconds()))
        return {
            "account_name": account.name,
            "account_id": account.id,
            "kind": account.kind,
            "expires_at": format_time(account.expires_at) if account.expires_at else None,
            "seconds_left": left,
            "claim_url": claim_url,
            "claim_status": claim_status,
        }

    def worker(self, authed: MayflyClient, account: AccountInfo, name: str | None) -> str:
        """The Worker a tool acts on: the one named, else the last deployed, else the only one."""
        if name:
            return name
        with self._lock:
            if self.last_worker:
                return self.last_worker
        found = authed.call("GET", f"/accounts/{account.id}/workers/scripts")
        names = [str(s["id"]) for s in found or [] if isinstance(s, dict) and "id" in s]
        if len(names) == 1:
            return names[0]
        listed = ", ".join(sorted(names)) or "none"
        raise ToolFailure(
            f"Which Worker? Pass `name` (Workers in {account.name}: {listed}).",
            code="worker_required",
        )

    # -- logs -----------------------------------------------------------------------------------

    def logs(
        self, listener: Listener, *, seconds: float, max_events: int, name: str | None
    ) -> dict[str, Any]:
        if not 0 < seconds <= MAX_LOG_SECONDS:
            raise ToolFailure(f"`seconds` must be between 1 and {MAX_LOG_SECONDS}.")
        if not 0 < max_events <= MAX_LOG_EVENTS:
            raise ToolFailure(f"`max_events` must be between 1 and {MAX_LOG_EVENTS}.")

        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            script = self.worker(authed, account, name)
            session = authed.tails.create(account.id, script)
            try:
                connection = self.open_websocket(session.url)
                listener.notice(f"Tailing {script} for up to {seconds:g} s")
                try:
                    found = list(events(connection, max_events=max_events, timeout=seconds))
                finally:
                    connection.close()
            finally:
                try:
                    authed.tails.delete(account.id, script, session.id)
                except SDKError as exc:
                    listener.notice(f"Could not delete the tail session: {exc.message}")
            return {"script": script, "count": len(found), "events": found}

        return self.run(action, listener).value

    # -- KV -------------------------------------------------------------------------------------

    def namespace(
        self,
        authed: MayflyClient,
        account: AccountInfo,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
    ) -> str:
        """`namespace_id`, else the Worker's KV binding (`binding`, or its only one)."""
        if namespace_id:
            return namespace_id
        script = self.worker(authed, account, name)
        settings = authed.workers.settings(account.id, script)
        bound = {
            str(b["name"]): str(b["namespace_id"])
            for b in settings.get("bindings") or []
            if isinstance(b, dict) and b.get("type") == "kv_namespace" and "namespace_id" in b
        }
        if binding is not None and binding in bound:
            return bound[binding]
        if binding is None and len(bound) == 1:
            return next(iter(bound.values()))
        names = ", ".join(sorted(bound)) or "none"
        raise ToolFailure(
            f"Which KV namespace? Pass `namespace_id`, or `binding` (the KV bindings of {script}: "
            f"{names}).",
            code="namespace_required",
        )

    def kv_get(
        self,
        listener: Listener,
        *,
        key: str,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            namespace = self.namespace(authed, account, namespace_id, binding, name)
            try:
                data = authed.kv.get(account.id, namespace, key)
            except MayflyAPIError as exc:
                if exc.code != KEY_NOT_FOUND:
                    raise
                return {"namespace_id": namespace, "key": key, "found": False, "value": None}
            try:
                value = data.decode()
            except UnicodeDecodeError:
                raise ToolFailure(
                    f"The value of {key!r} is binary ({len(data)} bytes), not UTF-8 text.",
                    code="binary_value",
                ) from None
            return {"namespace_id": namespace, "key": key, "found": True, "value": value}

        return self.run(action, listener).value

    def kv_put(
        self,
        listener: Listener,
        *,
        key: str,
        value: str,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
        expiration_ttl: int | None,
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            namespace = self.namespace(authed, account, namespace_id, binding, name)
            authed.kv.put(account.id, namespace, key, value.encode(), expiration_ttl=expiration_ttl)
            return {"namespace_id": namespace, "key": key, "written": True}

        return self.run(action, listener).value

    def kv_list(
        self,
        listener: Listener,
        *,
        prefix: str,
        limit: int,
        namespace_id: str | None,
        binding: str | None,
        name: str | None,
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            namespace = self.namespace(authed, account, namespace_id, binding, name)
            keys: list[dict[str, Any]] = []
            complete = True
            for found in authed.kv.keys(account.id, namespace, prefix):
                if len(keys) >= limit:
                    complete = False
                    break
                keys.append({"name": found.name, "expiration": found.expiration})
            return {"namespace_id": namespace, "keys": keys, "complete": complete}

        return self.run(action, listener).value

    # -- secrets, versions, rollback, delete ----------------------------------------------------

    def secret_put(
        self, listener: Listener, *, secret: str, value: str, name: str | None
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            script = self.worker(authed, account, name)
            authed.workers.put_secret(account.id, script, secret, value)
            return {"script": script, "secret": secret, "written": True}

        return self.run(action, listener).value

    def versions(self, listener: Listener, *, name: str | None) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            script = self.worker(authed, account, name)
            found = authed.workers.list_versions(account.id, script)
            deployments = _newest_first(authed.workers.list_deployments(account.id, script))
            return {
                "script": script,
                "live_version_id": deployments[0].version_id if deployments else None,
                "versions": [
                    {
                        "id": v.id,
                        "number": v.number,
                        "created_on": v.created_on,
                        "source": v.triggered_by or v.source,
                        "message": v.message,
                    }
                    for v in found
                ],
            }

        return self.run(action, listener).value

    def rollback(
        self, listener: Listener, *, version_id: str | None, name: str | None
    ) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            script = self.worker(authed, account, name)
            deployments = _newest_first(authed.workers.list_deployments(account.id, script))
            live = deployments[0].version_id if deployments else None
            chosen = version_id or next(
                (
                    d.version_id
                    for d in deployments[1:]
                    if d.version_id is not None and d.version_id != live
                ),
                None,
            )
            if chosen is None:
                raise ToolFailure(
                    f"{script} has no earlier deployment to roll back to; pass a `version_id` "
                    "(see the `versions` tool).",
                    code="no_rollback_target",
                )
            authed.workers.get_version(account.id, script, chosen)  # exists? (else an error)
            made = authed.workers.deploy_version(
                account.id, script, chosen, {"workers/triggered_by": "rollback"}
            )
            return {
                "script": script,
                "version_id": chosen,
                "previous_version_id": live,
                "deployment_id": made.id if made else None,
            }

        return self.run(action, listener).value

    def delete(self, listener: Listener, *, name: str | None) -> dict[str, Any]:
        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
            script = self.worker(authed, account, name)
            authed.workers.delete(account.id, script)
            with self._lock:
                if self.last_worker == script:
                    self.last_worker = None
            return {"script": script, "deleted": True}

        return self.run(action, listener).value


def _newest_first(found: list[WorkerDeployment]) -> list[WorkerDeployment]:
    return sorted(found, key=lambda d: d.created_on or "", reverse=True)


def _write_files(root: Path, files: Mapping[str, str]) -> None:
    if not files:
        raise ToolFailure("`files` is empty: pass at least the entry module.")
    if len(files) > MAX_FILES:
        raise ToolFailure(f"`files` has {len(files)} entries; at most {MAX_FILES}.")
    for name, content in files.items():
        relative = PurePosixPath(name)
        if (
            not name
            or relative.is_absolute()
            or ".." in relative.parts
            or "\\" in name
            or "\0" in name
        ):
            raise ToolFailure(
                f"The file name {name!r} must be a relative path inside the project "
                "(no leading /, no ..).",
                code="invalid_file_name",
            )
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def _files_target(
    files: Mapping[str, str], name: str | None, main: str | None
) -> tuple[str | None, str | None]:
    """`name` and `main` for inline files: the configuration's when one is among them, else
    the arguments (default name `worker`, default entry the one script or an index.*)."""
    if any(n in CONFIG_FILES for n in files):
        return name, main
    main = main or _guess_main(files)
    if main is None:
        raise ToolFailure(
            "Which module is the entry? Pass `main` (one of `files`), or a wrangler.toml / "
            "wrangler.json among `files` that names it.",
            code="project_invalid",
        )
    return name or "worker", main


def _confine(project: Project) -> None:
    """A remote agent's project reads nothing outside its temporary directory (modules are
    confined by the project reader; the assets directory is checked here)."""
    root = project.root.resolve()
    if project.assets is not None and not project.assets.directory.resolve().is_relative_to(root):
        raise ToolFailure(
            "`assets.directory` must be a folder among `files`.", code="project_invalid"
        )


def _no_bundling(project: Project) -> ModuleSet:
    raise ToolFailure(
        f"{project.main} needs bundling (TypeScript, JSX or an npm import), which the remote MCP "
        "server does not do: send plain JavaScript modules (bundle locally, or use `mayfly mcp` "
        "on your machine).",
        code="bundling_unavailable",
    )


def _guess_main(files: Mapping[str, str]) -> str | None:
    for candidate in ("src/index.ts", "src/index.js", "index.ts", "index.js", "worker.js"):
        if candidate in files:
            return candidate
    scripts = [n for n in files if n.endswith((".js", ".mjs", ".ts"))]
    return scripts[0] if len(scripts) == 1 else None


def _asset_upload(manifest: AssetManifest) -> AssetUpload:
    return AssetUpload(
        files=tuple(
            AssetSource(f.path, f.hash, f.size, f.content_type, f.source) for f in manifest.files
        ),
        config=manifest.config,
        binding=manifest.binding,
    )
