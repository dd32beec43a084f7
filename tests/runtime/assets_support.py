"""Deploying static-asset sites to a LivePlatform through the public API, as wrangler does (AS1,
AS2, then the script upload with `metadata.assets`; spec wrangler-assets.md §4-6)."""

from __future__ import annotations

import base64
import json
from typing import Any

import blake3
import httpx

from tests.conftest import auth
from tests.runtime.harness import LiveDataPlane, LivePlatform

# wrangler's part Content-Type per extension (the `mime` package; text/* gets a charset).
TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "png": "image/png",
}
NULL_TYPE = "application/null"  # no extension or an unknown one: served without Content-Type


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rpartition(".")[2] if "." in name.lstrip(".") else ""


def wrangler_hash(data: bytes, path: str) -> str:
    """hex(BLAKE3(base64(bytes) + extension))[:32]."""
    text = base64.b64encode(data).decode() + extension(path)
    return blake3.blake3(text.encode()).hexdigest()[:32]


def content_type(path: str) -> str:
    return TYPES.get(extension(path), NULL_TYPE)


def upload_assets(
    live: LivePlatform, account: dict[str, Any], script: str, files: dict[str, bytes]
) -> tuple[str, list[str]]:
    """AS1 + AS2; returns the completion token and the paths whose bytes were uploaded."""
    manifest = {p: {"hash": wrangler_hash(d, p), "size": len(d)} for p, d in files.items()}
    session = live.api.post(
        f"accounts/{account['id']}/workers/scripts/{script}/assets-upload-session",
        headers=auth(account["apiToken"]),
        json={"manifest": manifest},
    )
    assert session.status_code == 200, session.text
    result = session.json()["result"]
    by_hash = {wrangler_hash(d, p): (p, d) for p, d in files.items()}
    completion = result["jwt"] if not result["buckets"] else None
    uploaded: list[str] = []
    for bucket in result["buckets"]:
        parts = []
        for digest in bucket:
            path, data = by_hash[digest]
            parts.append((digest, (digest, base64.b64encode(data), content_type(path))))
            uploaded.append(path)
        response = live.api.post(
            f"accounts/{account['id']}/workers/assets/upload?base64=true",
            headers=auth(result["jwt"]),
            files=parts,
        )
        assert response.status_code in (201, 202), response.text
        completion = response.json()["result"]["jwt"] or completion
    assert completion
    return completion, uploaded


def deploy_site(
    live: LivePlatform,
    account: dict[str, Any],
    script: str,
    files: dict[str, bytes],
    config: dict[str, Any] | None = None,
    *,
    worker: str | None = None,
    binding: str | None = None,
    compatibility_date: str = "2025-01-01",
) -> str:
    """Upload the assets, then PUT the script: with `worker` (one ES module) or assets-only.
    Returns the id of the version made live."""
    completion, _ = upload_assets(live, account, script, files)
    metadata: dict[str, Any] = {
        "assets": {"jwt": completion, "config": config or {}},
        "compatibility_date": compatibility_date,
        "compatibility_flags": [],
    }
    parts: list[tuple[str, Any]] = []
    if worker is not None:
        metadata["main_module"] = "index.js"
        metadata["bindings"] = [{"name": binding, "type": "assets"}] if binding else []
        parts.append(("index.js", ("index.js", worker.encode(), "application/javascript+module")))
    response = live.api.put(
        f"accounts/{account['id']}/workers/scripts/{script}",
        headers=auth(account["apiToken"]),
        files=[("metadata", (None, json.dumps(metadata), "application/json")), *parts],
    )
    assert response.status_code == 200, response.text
    version_id: str = response.json()["result"]["deployment_id"]
    return version_id


def request(
    live: LiveDataPlane,
    host: str,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Like live.get, with request headers."""
    with httpx.Client(timeout=30) as client:
        return client.request(
            method,
            f"http://127.0.0.1:{live.port}{path}",
            headers={"host": host, **(headers or {})},
        )
