"""What the MCP tools do, as blocking calls over `mayfly.sdk` (the tools run them in a thread).

Credentials come either from this machine (the CLI's order: MAYFLY_API_TOKEN, `mayfly login`,
the cached temporary account, else a new temporary account when a deploy asks for one), or from
one fixed API token (the remote server at /mcp, where the caller's bearer token is the only
credential and no account is ever provisioned).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mayfly.mcp.core import MAX_LOG_EVENTS, MAX_LOG_SECONDS, ToolFailure
from mayfly.mcp.kv_tools import KvTools
from mayfly.mcp.project_files import confine, files_target, no_bundling, write_files
from mayfly.project import (
    CONFIG_FILES,
    Project,
    build_manifest,
    build_modules,
    load_project,
)
from mayfly.project.upload import deploy_options, worker_upload
from mayfly.sdk import (
    AccountInfo,
    Credentials,
    Deployer,
    Listener,
    MayflyAPIError,
    MayflyClient,
    SDKError,
)
from mayfly.sdk.errors import TEMPORARY_CLAIMED, TEMPORARY_EXPIRED
from mayfly.sdk.models import format_time
from mayfly.sdk.tail import events
from mayfly.sdk.worker_models import WorkerDeployment


class Backend(KvTools):
    """One agent's view of a Mayfly server (core.py); the KV tools are in kv_tools.py."""

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
        event: str | None = None,
    ) -> dict[str, Any]:
        """`event`: an event code (`mayfly admin event create`) for the temporary account this
        deploy creates, as `mayfly deploy --temporary --event CODE`."""
        if (path is None) == (files is None):
            raise ToolFailure("Pass exactly one of `path` (a project directory) and `files`.")
        if files is not None:
            with tempfile.TemporaryDirectory(prefix="mayfly-mcp-") as directory:
                root = Path(directory)
                write_files(root, files)
                name, main = files_target(files, name, main)
                if not any(n in CONFIG_FILES for n in files):
                    # Without it, a wrangler file in a parent of the temporary directory counts.
                    (root / "wrangler.json").write_text(json.dumps({"name": name, "main": main}))
                project = load_project(root, name=name, main=main)
                return self._deploy_project(project, listener, temporary, event)
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
        return self._deploy_project(project, listener, temporary, event)

    def _deploy_project(
        self, project: Project, listener: Listener, temporary: bool, event: str | None
    ) -> dict[str, Any]:
        resolution = self.resolution()
        credentials = resolution.credentials
        source = credentials.source if credentials else None
        if event:
            self._check_event(temporary, credentials)
        if self.remote:
            confine(project)
        bundler = no_bundling if self.remote else None
        modules = build_modules(project, bundler) if project.main is not None else None
        manifest = build_manifest(project)
        upload = worker_upload(project, modules)
        temporary = temporary and not self.remote and source in (None, "temporary")
        with self.client() as client:
            deployer = Deployer(client, self.cache, listener, self.clock)
            deployment = deployer.deploy(
                project.name,
                upload,
                resolution,
                temporary=temporary,
                event_code=event or None,
                **deploy_options(project, manifest),
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

    def _check_event(self, temporary: bool, credentials: Credentials | None) -> None:
        """An event code applies to a temporary account this deploy creates, and only to one."""
        if self.remote:
            raise ToolFailure(
                "`event` is for a new temporary account, which /mcp never creates: its accounts "
                "are the bearer token's.",
                code="event_conflict",
            )
        if not temporary:
            raise ToolFailure(
                "`event` needs temporary=true: it applies to a new temporary account."
            )
        if credentials is not None and credentials.temporary is not None:
            raise ToolFailure(
                f"A temporary account is already cached ({credentials.temporary.name}); `event` "
                "only applies when a new one is created. Deploy without `event` to reuse it.",
                code="event_conflict",
            )
        if credentials is not None:
            raise ToolFailure(
                f"`event` is for a new temporary account, but credentials are set "
                f"({credentials.source}); unset them to use the event, or deploy without `event`.",
                code="event_conflict",
            )

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
