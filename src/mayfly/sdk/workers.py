"""A Worker's life after its first deploy: versions, deployments, settings, secrets, deletion
(spec §1: W1, W2, W6, W7, W10, W11, W14–W17, W21)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mayfly.sdk.errors import MayflyAPIError
from mayfly.sdk.worker_models import (
    SecretInfo,
    UploadModule,
    UploadResult,
    WorkerDeployment,
    WorkerUpload,
    WorkerVersion,
)

if TYPE_CHECKING:
    from mayfly.sdk.client import MayflyClient

MALFORMED = 0
VERSIONS_PER_PAGE = 100
# What `secret put` uploads when the Worker does not exist yet (wrangler does the same, W9).
DRAFT_MODULE = "index.js"
DRAFT_SOURCE = (
    "export default {\n"
    "  fetch() {\n"
    '    return new Response("This Worker has secrets but no code yet: deploy it with '
    '`mayfly deploy`.\\n", { status: 503 });\n'
    "  },\n"
    "};\n"
)


class WorkersAPI:
    def __init__(self, client: MayflyClient) -> None:
        self.client = client

    def _script(self, account_id: str, script: str) -> str:
        return f"/accounts/{account_id}/workers/scripts/{script}"

    # -- versions and deployments ---------------------------------------------------------------

    def list_versions(self, account_id: str, script: str) -> list[WorkerVersion]:
        """W16, newest first: every page."""
        out: list[WorkerVersion] = []
        page = 1
        while True:
            body = self.client.envelope(
                "GET",
                self._script(account_id, script) + "/versions",
                params={"page": page, "per_page": VERSIONS_PER_PAGE},
            )
            result = body.get("result")
            items = result.get("items") if isinstance(result, dict) else None
            if not isinstance(items, list):
                raise MayflyAPIError(MALFORMED, "The versions list has no `items`.", 200)
            out += [_version(item) for item in items]
            total = (body.get("result_info") or {}).get("total_count")
            if not items or not isinstance(total, int) or len(out) >= total:
                return out
            page += 1

    def get_version(self, account_id: str, script: str, version_id: str) -> WorkerVersion:
        """W17."""
        path = f"{self._script(account_id, script)}/versions/{quote(version_id, safe='')}"
        return _version(self.client.call("GET", path))

    def list_deployments(self, account_id: str, script: str) -> list[WorkerDeployment]:
        """W6, newest first."""
        result = self.client.call("GET", self._script(account_id, script) + "/deployments")
        items = result.get("deployments") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise MayflyAPIError(MALFORMED, "The deployments list has no `deployments`.", 200)
        return [_deployment(item) for item in items]

    def deploy_version(
        self,
        account_id: str,
        script: str,
        version_id: str,
        annotations: dict[str, str] | None = None,
    ) -> WorkerDeployment | None:
        """W11: make `version_id` live for all traffic (a rollback is one of these)."""
        body: dict[str, Any] = {
            "strategy": "percentage",
            "versions": [{"version_id": version_id, "percentage": 100}],
        }
        if annotations:
            body["annotations"] = annotations
        result = self.client.call(
            "POST", self._script(account_id, script) + "/deployments", json=body
        )
        return _deployment(result) if isinstance(result, dict) and "id" in result else None

    def settings(self, account_id: str, script: str) -> dict[str, Any]:
        """W7: the current bindings and runtime settings."""
        result = self.client.call("GET", self._script(account_id, script) + "/settings")
        return result if isinstance(result, dict) else {}

    def schedules(self, account_id: str, script: str) -> list[str]:
        """The Worker's cron triggers."""
        result = self.client.call("GET", self._script(account_id, script) + "/schedules")
        return _crons(result)

    def put_schedules(self, account_id: str, script: str, crons: Sequence[str]) -> list[str]:
        """Replaces the Worker's cron triggers (an empty list removes them); 10021 for one the
        server cannot run."""
        result = self.client.call(
            "PUT",
            self._script(account_id, script) + "/schedules",
            json=[{"cron": c} for c in crons],
        )
        return _crons(result)

    def delete(self, account_id: str, script: str) -> None:
        """W21: the Worker, its versions and deployments; its URL stops answering."""
        self.client.call(
            "DELETE", f"/accounts/{account_id}/workers/services/{script}", params={"force": "false"}
        )

    # -- secrets --------------------------------------------------------------------------------

    def list_secrets(self, account_id: str, script: str) -> list[SecretInfo]:
        """W2."""
        result = self.client.call("GET", self._script(account_id, script) + "/secrets")
        return [
            SecretInfo(str(item["name"]), str(item.get("type", "secret_text")))
            for item in result or []
            if isinstance(item, dict) and "name" in item
        ]

    def put_secret(self, account_id: str, script: str, name: str, value: str) -> None:
        """W14: a new version with the secret, deployed at once (10007 if the Worker is new)."""
        self.client.call(
            "PUT",
            self._script(account_id, script) + "/secrets",
            json={"name": name, "text": value, "type": "secret_text"},
        )

    def delete_secret(self, account_id: str, script: str, name: str) -> None:
        """W15."""
        path = f"{self._script(account_id, script)}/secrets/{quote(name, safe='')}"
        self.client.call("DELETE", path, params={"url_encoded": "true"})

    def create_draft(self, account_id: str, script: str) -> UploadResult:
        """W9 with a placeholder module: a Worker to hold secrets before its first deploy."""
        draft = WorkerUpload(
            main_module=DRAFT_MODULE,
            modules=(UploadModule(DRAFT_MODULE, DRAFT_SOURCE.encode()),),
        )
        return self.client.upload_script(account_id, script, draft)


def _annotations(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def _version(raw: Any) -> WorkerVersion:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise MayflyAPIError(MALFORMED, "A version in the API's answer has no id.", 200)
    meta = _dict(raw.get("metadata"))
    resources = _dict(raw.get("resources"))
    script = _dict(resources.get("script"))
    runtime = _dict(resources.get("script_runtime"))
    bindings = resources.get("bindings")
    bindings = bindings if isinstance(bindings, list) else []
    number = raw.get("number")
    return WorkerVersion(
        id=raw["id"],
        number=number if isinstance(number, int) else None,
        created_on=_str(meta.get("created_on")),
        author_email=_str(meta.get("author_email")),
        source=_str(meta.get("source")),
        annotations=_annotations(raw.get("annotations")),
        handlers=tuple(str(h) for h in script.get("handlers") or []),
        compatibility_date=_str(runtime.get("compatibility_date")),
        compatibility_flags=tuple(str(f) for f in runtime.get("compatibility_flags") or []),
        bindings=tuple(dict(b) for b in bindings if isinstance(b, dict)),
    )


def _deployment(raw: Any) -> WorkerDeployment:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise MayflyAPIError(MALFORMED, "A deployment in the API's answer has no id.", 200)
    versions = []
    for item in raw.get("versions") or []:
        if isinstance(item, dict) and isinstance(item.get("version_id"), str):
            percentage = item.get("percentage", 100)
            versions.append(
                (item["version_id"], int(percentage) if isinstance(percentage, int | float) else 0)
            )
    return WorkerDeployment(
        id=raw["id"],
        created_on=_str(raw.get("created_on")),
        author_email=_str(raw.get("author_email")),
        source=_str(raw.get("source")),
        annotations=_annotations(raw.get("annotations")),
        versions=tuple(versions),
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _crons(result: Any) -> list[str]:
    items = result.get("schedules") if isinstance(result, dict) else None
    return [str(i["cron"]) for i in items or [] if isinstance(i, dict) and "cron" in i]
