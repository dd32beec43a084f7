"""W1–W21: Workers, versions, deployments, settings, subdomains (spec §1, §5)."""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import account_access, services
from mayfly.api.envelope import failure, json_body, ok, page_params
from mayfly.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    STRING,
    TIMESTAMP,
    array,
    component,
    nullable,
    obj,
    operation,
)
from mayfly.api.uploads import read_upload
from mayfly.errors import SecretNotFound, ValidationError
from mayfly.model import Account, iso
from mayfly.services.core import strict_json

TAG = "Workers"
# `?bindings_inherit=strict`: a binding to inherit must exist in the previous version.
UPLOAD_QUERY = {"bindings_inherit": {"type": "string", "enum": ["strict"]}}
UPLOAD = {
    "multipart/form-data": obj(
        {
            "metadata": obj(
                {
                    "main_module": STRING,
                    "body_part": STRING,
                    "compatibility_date": STRING,
                    "compatibility_flags": array(STRING),
                    "bindings": array(ANY_OBJECT),
                    "keep_bindings": array(STRING),
                    "annotations": obj({"workers/message": STRING, "workers/tag": STRING}),
                    "assets": ANY_OBJECT,
                    "usage_model": STRING,
                }
            ),
        },
        "metadata",
    )
    # and one part per module, named by its file name
    | {"additionalProperties": {"type": "string", "format": "binary"}}
}
UPLOAD_EXAMPLE = {
    "multipart/form-data": {
        "metadata": {"main_module": "index.js", "compatibility_date": "2025-01-01"},
        "index.js": 'export default { fetch() { return new Response("hello"); } };',
    }
}
SECRET_NAME = {"type": "string", "pattern": "^[A-Za-z_$][A-Za-z0-9_$]{0,63}$"}
VERSION = component(
    "worker-version",
    obj(
        {
            "id": STRING,
            "number": INTEGER,
            "metadata": obj(
                {
                    "created_on": TIMESTAMP,
                    "modified_on": TIMESTAMP,
                    "source": STRING,
                    "author_email": STRING,
                }
            ),
            "annotations": ANY_OBJECT,
            "resources": obj(
                {
                    "script": obj({"etag": STRING, "handlers": array(STRING)}),
                    "script_runtime": obj(
                        {"compatibility_date": STRING, "compatibility_flags": array(STRING)}
                    ),
                    "bindings": array(ANY_OBJECT),
                }
            ),
        },
        "id",
        "resources",
    ),
)
DEPLOYMENT = component(
    "worker-deployment",
    obj(
        {
            "id": STRING,
            "created_on": TIMESTAMP,
            "source": STRING,
            "strategy": STRING,
            "author_email": STRING,
            "annotations": ANY_OBJECT,
            "versions": array(obj({"version_id": STRING, "percentage": {"type": "number"}})),
        },
        "id",
        "versions",
    ),
)
SETTINGS = component(
    "worker-settings",
    obj(
        {
            "bindings": array(ANY_OBJECT),
            "compatibility_date": STRING,
            "compatibility_flags": array(STRING),
            "usage_model": STRING,
            "logpush": BOOLEAN,
            "observability": ANY_OBJECT,
            "tags": array(STRING),
            "tail_consumers": array(ANY_OBJECT),
        }
    ),
)
SECRET = obj({"name": STRING, "type": {"type": "string", "enum": ["secret_text"]}}, "name", "type")
SCRIPT_SUBDOMAIN = obj({"enabled": BOOLEAN, "previews_enabled": BOOLEAN}, "enabled")
SUBDOMAIN = obj({"subdomain": STRING}, "subdomain")
TIMES = {"created_on": TIMESTAMP, "modified_on": TIMESTAMP}


def _script(request: Request) -> str:
    return str(request.path_params["script"])


def _strict(request: Request) -> bool:
    return request.query_params.get("bindings_inherit") == "strict"


async def _not_quarantined(request: Request, account: Account) -> None:
    """10060 while the Worker is quarantined: it cannot be read, changed or deployed."""
    await asyncio.to_thread(services(request).quarantine.check, account, _script(request))


def worker_url(request: Request, account: Account, script: str) -> str:
    return services(request).ctx.worker_url(script, account.name)


@operation(
    "GET",
    "A Worker as a service with its production environment (10007 for a new Worker)",
    tag=TAG,
    result=obj(
        {
            "id": STRING,
            **TIMES,
            "default_environment": obj(
                {
                    "environment": STRING,
                    **TIMES,
                    "script": obj({"id": STRING, "tag": STRING, "etag": nullable(STRING), **TIMES}),
                }
            ),
        },
        "id",
    ),
)
async def get_service(request: Request) -> Response:
    """W1: 10007 for a new Worker (wrangler's first deploy depends on it)."""
    _, account = await account_access(request)
    await _not_quarantined(request, account)
    row, version = await asyncio.to_thread(
        services(request).scripts.current, account, _script(request)
    )
    return ok(
        {
            "id": row.name,
            "created_on": iso(row.created_at),
            "modified_on": iso(row.updated_at),
            "default_environment": {
                "environment": "production",
                "created_on": iso(row.created_at),
                "modified_on": iso(row.updated_at),
                "script": {
                    "id": row.name,
                    "tag": row.id,
                    "etag": version["resources"]["script"]["etag"] if version else None,
                    "handlers": version["resources"]["script"]["handlers"] if version else [],
                    "last_deployed_from": "wrangler",
                    "created_on": iso(row.created_at),
                    "modified_on": iso(row.updated_at),
                },
            },
        }
    )


@operation(
    "PUT",
    "Upload a Worker's modules as a new version and deploy it",
    operation_id="worker-script-upload-worker-module",
    tag=TAG,
    query=UPLOAD_QUERY,
    body=UPLOAD,
    examples=UPLOAD_EXAMPLE,
    body_required=True,
    result=obj(
        {
            "id": STRING,
            "etag": STRING,
            "handlers": array(STRING),
            **TIMES,
            "compatibility_date": STRING,
            "compatibility_flags": array(STRING),
            "deployment_id": STRING,
            "startup_time_ms": INTEGER,
            "usage_model": STRING,
            "url": STRING,
        },
        "id",
    ),
)
async def put_script(request: Request) -> Response:
    """W9: store a version and deploy it (creates the Worker if new)."""
    who, account = await account_access(request)
    await _not_quarantined(request, account)
    svc = services(request)
    plan = await read_upload(request, svc.ctx.settings.max_upload_bytes)
    uploaded = await svc.scripts.upload(
        who, account, _script(request), plan, deploy=True, strict_inherit=_strict(request)
    )
    version = uploaded.version
    return ok(
        {
            "id": _script(request),
            "etag": version["resources"]["script"]["etag"],
            "handlers": version["resources"]["script"]["handlers"],
            "created_on": version["metadata"]["created_on"],
            "modified_on": version["metadata"]["created_on"],
            "compatibility_date": version["resources"]["script_runtime"]["compatibility_date"],
            "compatibility_flags": version["resources"]["script_runtime"]["compatibility_flags"],
            "deployment_id": version["id"],
            "startup_time_ms": 0,
            "usage_model": "standard",
            "url": worker_url(request, account, _script(request)),
        },
        messages=uploaded.messages,
    )


@operation(
    "POST",
    "Upload a version without deploying it",
    operation_id="worker-versions-upload-version",
    tag=TAG,
    query=UPLOAD_QUERY,
    body=UPLOAD,
    examples=UPLOAD_EXAMPLE,
    body_required=True,
    result=VERSION,
)
async def post_version(request: Request) -> Response:
    """W10: store a version without deploying it."""
    who, account = await account_access(request)
    await _not_quarantined(request, account)
    svc = services(request)
    plan = await read_upload(request, svc.ctx.settings.max_upload_bytes)
    uploaded = await svc.scripts.upload(
        who, account, _script(request), plan, deploy=False, strict_inherit=_strict(request)
    )
    # wrangler `versions upload` prints `Worker Startup Time: <startup_time_ms> ms` unconditionally.
    return ok({**uploaded.version, "startup_time_ms": 0}, messages=uploaded.messages)


VERSIONS_PER_PAGE = 100  # wrangler asks once, without page/per_page, and shows the newest 10


@operation(
    "GET",
    "A Worker's versions, newest first, a page at a time",
    operation_id="worker-versions-list-versions",
    tag=TAG,
    query={
        "page": {"type": "integer", "minimum": 1, "default": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
    },
    result=obj({"items": array(VERSION)}, "items"),
    result_info=True,
)
async def list_versions(request: Request) -> Response:
    """W16: newest first, a page at a time (`page`, `per_page` as Cloudflare's lists)."""
    _, account = await account_access(request)
    page, per_page = page_params(request, VERSIONS_PER_PAGE, maximum=VERSIONS_PER_PAGE)
    items, total = await asyncio.to_thread(
        services(request).scripts.list_versions, account, _script(request), page, per_page
    )
    return ok(
        {"items": items},
        result_info={
            "page": page,
            "per_page": per_page,
            "count": len(items),
            "total_count": total,
            "total_pages": (total + per_page - 1) // per_page,
        },
    )


@operation(
    "GET", "One version", operation_id="worker-versions-get-version-detail", tag=TAG, result=VERSION
)
async def get_version(request: Request) -> Response:
    _, account = await account_access(request)
    version = await asyncio.to_thread(
        services(request).scripts.get_version,
        account,
        _script(request),
        request.path_params["version_id"],
    )
    return ok(version)


@operation(
    "GET",
    "A Worker's deployments, newest first",
    operation_id="worker-deployments-list-deployments",
    tag=TAG,
    query={
        "page": {"type": "integer", "minimum": 1, "default": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
    },
    # `deployments` is what wrangler reads; `items` what the SDKs' page iterators read.
    result=obj({"deployments": array(DEPLOYMENT), "items": array(DEPLOYMENT)}, "deployments"),
    result_info=True,
)
async def list_deployments(request: Request) -> Response:
    _, account = await account_access(request)
    page, per_page = page_params(request, VERSIONS_PER_PAGE, maximum=VERSIONS_PER_PAGE)
    items, total = await asyncio.to_thread(
        services(request).scripts.list_deployments, account, _script(request), page, per_page
    )
    return ok(
        {"deployments": items, "items": items},
        result_info={
            "page": page,
            "per_page": per_page,
            "count": len(items),
            "total_count": total,
            "total_pages": (total + per_page - 1) // per_page,
        },
    )


@operation(
    "GET",
    "One deployment (10404 if the Worker has no such deployment)",
    operation_id="worker-deployments-get-deployment",
    tag=TAG,
    result=DEPLOYMENT,
)
async def get_deployment(request: Request) -> Response:
    _, account = await account_access(request)
    found = await asyncio.to_thread(
        services(request).scripts.get_deployment,
        account,
        _script(request),
        request.path_params["deployment_id"],
    )
    return ok(found)


@operation(
    "POST",
    "Deploy one version at 100%",
    operation_id="worker-deployments-create-deployment",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "strategy": {"type": "string", "enum": ["percentage"]},
                "versions": array(
                    obj(
                        {
                            "version_id": STRING,
                            # one version at 100%: Mayfly has no gradual deployments
                            "percentage": {"type": "number", "enum": [100]},
                        },
                        "version_id",
                        "percentage",
                    ),
                    minItems=1,
                    maxItems=1,
                ),
                "annotations": obj({"workers/message": {"type": "string", "maxLength": 50}}),
            },
            "strategy",
            "versions",
        )
    },
    body_required=True,
    result=DEPLOYMENT,
)
async def post_deployment(request: Request) -> Response:
    who, account = await account_access(request)
    await _not_quarantined(request, account)
    body = await json_body(request)
    deployment = await services(request).scripts.create_deployment(
        who, account, _script(request), body
    )
    return ok(deployment)


@operation(
    "GET",
    "A Worker's settings (bindings, compatibility, observability)",
    operation_id="worker-script-get-settings",
    tag=TAG,
    result=SETTINGS,
)
async def get_settings(request: Request) -> Response:
    _, account = await account_access(request)
    await _not_quarantined(request, account)
    return ok(
        await asyncio.to_thread(services(request).scripts.settings, account, _script(request))
    )


@operation(
    "PATCH",
    "Change a Worker's script settings",
    operation_id="worker-script-settings-patch-settings",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "logpush": BOOLEAN,
                "observability": ANY_OBJECT,
                "tags": array(STRING),
                "tail_consumers": array(obj({"service": STRING}, "service")),
            },
            extra=False,
        )
    },
    body_required=True,
    result=SETTINGS,
)
async def patch_script_settings(request: Request) -> Response:
    _, account = await account_access(request)
    await _not_quarantined(request, account)
    body = await json_body(request)
    result = await asyncio.to_thread(
        services(request).scripts.patch_settings, account, _script(request), body
    )
    return ok(result)


@operation("GET", "A Worker's secrets (names only)", tag=TAG, result=array(SECRET))
async def list_secrets(request: Request) -> Response:
    _, account = await account_access(request)
    bindings = await asyncio.to_thread(
        services(request).scripts.current_bindings, account, _script(request)
    )
    return ok(
        [{"name": b["name"], "type": b["type"]} for b in bindings if b["type"] == "secret_text"]
    )


@operation(
    "PUT",
    "Set a secret (a new version, deployed)",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "name": SECRET_NAME,
                "text": STRING,
                "type": {"type": "string", "enum": ["secret_text"]},
            },
            "name",
            "text",
        )
    },
    examples={"application/json": {"name": "API_KEY", "text": "s3cret", "type": "secret_text"}},
    body_required=True,
    result=SECRET,
)
async def put_secret(request: Request) -> Response:
    """W14: a secret change makes a new version and deploys it (10007 for a missing Worker)."""
    who, account = await account_access(request)
    await _not_quarantined(request, account)
    body = await json_body(request)
    return ok(await services(request).scripts.put_secret(who, account, _script(request), body))


@operation(
    "GET",
    "One secret's name and type",
    tag=TAG,
    path={"secret_name": SECRET_NAME},
    result=SECRET,
)
@operation(
    "DELETE",
    "Delete a secret (a new version, deployed)",
    tag=TAG,
    path={"secret_name": SECRET_NAME},
    query={"url_encoded": BOOLEAN},
)
async def secret(request: Request) -> Response:
    """W15 (DELETE, `?url_encoded=true`) and GET of one secret's name and type."""
    who, account = await account_access(request)
    secret_name = request.path_params["secret_name"]
    if request.method == "DELETE":
        await services(request).scripts.delete_secret(who, account, _script(request), secret_name)
        return ok(None)
    bindings = await asyncio.to_thread(
        services(request).scripts.current_bindings, account, _script(request)
    )
    for binding in bindings:
        if binding["name"] == secret_name and binding["type"] == "secret_text":
            return ok({"name": secret_name, "type": "secret_text"})
    raise SecretNotFound(f"Worker {_script(request)!r} has no secret named {secret_name!r}.")


@operation(
    "GET",
    "The account's workers subdomain",
    operation_id="worker-subdomain-get-subdomain",
    tag=TAG,
    result=SUBDOMAIN,
)
async def get_account_subdomain(request: Request) -> Response:
    _, account = await account_access(request)
    return ok({"subdomain": account.subdomain})


@operation(
    "GET",
    "Is a subdomain free? (an account's subdomain is its name)",
    tag=TAG,
    result=obj({"available": BOOLEAN, "owned": BOOLEAN}),
)
async def check_subdomain(request: Request) -> Response:
    """W4: is a subdomain free? Every account's subdomain is its (unique) name."""
    _, account = await account_access(request)
    wanted = request.path_params["name"]
    if wanted == account.subdomain:
        return ok({"available": False, "owned": True})
    return failure(10031, f"The subdomain {wanted!r} is taken or reserved.", 409)


@operation(
    "PUT",
    "Set the account's subdomain (only to its current name: 10031 otherwise)",
    operation_id="worker-subdomain-create-subdomain",
    tag=TAG,
    body={"application/json": obj({"subdomain": STRING}, "subdomain")},
    body_required=True,
    result=SUBDOMAIN,
)
async def put_account_subdomain(request: Request) -> Response:
    _, account = await account_access(request)
    body = await json_body(request)
    if not isinstance(body.get("subdomain"), str):
        raise ValidationError('Send the subdomain as a string: {"subdomain": "<name>"}.')
    if body.get("subdomain") == account.subdomain:
        return ok({"subdomain": account.subdomain})
    return failure(
        10031,
        f"An account's subdomain is its name ({account.subdomain!r}) and cannot be changed.",
        409,
    )


@operation(
    "GET",
    "A Worker and its URL",
    tag=TAG,
    result=obj(
        {
            "id": STRING,
            "name": STRING,
            "created_on": TIMESTAMP,
            "updated_on": TIMESTAMP,
            "subdomain": obj({"enabled": BOOLEAN, "previews_enabled": BOOLEAN, "url": STRING}),
        },
        "id",
        "name",
    ),
)
async def get_worker(request: Request) -> Response:
    """W8: the Worker and its URL (wrangler prints subdomain.url's hostname)."""
    _, account = await account_access(request)
    await _not_quarantined(request, account)
    row, _ = await asyncio.to_thread(services(request).scripts.current, account, _script(request))
    return ok(
        {
            "id": row.name,
            "name": row.name,
            "created_on": iso(row.created_at),
            "updated_on": iso(row.updated_at),
            "subdomain": {
                "enabled": bool(row.subdomain_enabled),
                "previews_enabled": False,
                "url": worker_url(request, account, row.name),
            },
        }
    )


@operation("GET", "Whether the Worker is served on workers.dev", tag=TAG, result=SCRIPT_SUBDOMAIN)
@operation(
    "DELETE", "Stop serving the Worker on the account's subdomain", tag=TAG, result=SCRIPT_SUBDOMAIN
)
@operation(
    "POST",
    "Serve the Worker on the account's subdomain, or stop",
    tag=TAG,
    body={"application/json": obj({"enabled": BOOLEAN, "previews_enabled": BOOLEAN})},
    result=SCRIPT_SUBDOMAIN,
)
async def script_subdomain(request: Request) -> Response:
    """W13: enable or disable the Worker on the account's subdomain."""
    _, account = await account_access(request)
    if request.method == "GET":
        row, _ = await asyncio.to_thread(
            services(request).scripts.current, account, _script(request)
        )
        return ok({"enabled": bool(row.subdomain_enabled), "previews_enabled": False})
    body = {"enabled": False} if request.method == "DELETE" else await json_body(request)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("`enabled` must be true or false.")
    return ok(
        await services(request).scripts.set_subdomain_enabled(account, _script(request), enabled)
    )


@operation(
    "GET",
    "What refers to this Worker (nothing: no service bindings or Durable Objects)",
    tag=TAG,
    result=obj(
        {
            "services": obj({"incoming": array(ANY_OBJECT), "outgoing": array(ANY_OBJECT)}),
            "durable_objects": array(ANY_OBJECT),
            "dispatch_outbounds": array(ANY_OBJECT),
        }
    ),
)
async def references(request: Request) -> Response:
    _, account = await account_access(request)
    await asyncio.to_thread(services(request).scripts.current, account, _script(request))
    return ok(
        {
            "services": {"incoming": [], "outgoing": []},
            "durable_objects": [],
            "dispatch_outbounds": [],
        }
    )


@operation("GET", "Tail consumers of a Worker (none)", tag=TAG, result=array(ANY_OBJECT))
async def tails_by_consumer(request: Request) -> Response:
    await account_access(request)
    return ok([])


@operation(
    "GET",
    "Durable Object namespaces (none: Mayfly has no Durable Objects)",
    operation_id="durable-objects-namespace-list-namespaces",
    tag=TAG,
    result=array(ANY_OBJECT),
    result_info=True,
)
async def durable_object_namespaces(request: Request) -> Response:
    await account_access(request)
    return ok([], result_info={"page": 1, "per_page": 1000, "count": 0, "total_count": 0})


@operation(
    "DELETE",
    "Delete a Worker with its versions, secrets and tails",
    operation_id="worker-script-delete-worker",
    tag=TAG,
)
async def delete_script(request: Request) -> Response:
    who, account = await account_access(request)
    await services(request).scripts.delete(who, account, _script(request))
    return ok(None)


SCRIPT_SUMMARY = obj(
    {
        "id": STRING,
        "tag": STRING,
        "etag": nullable(STRING),
        "handlers": array(STRING),
        **TIMES,
        "usage_model": STRING,
        "has_assets": BOOLEAN,
        "has_modules": BOOLEAN,
        "logpush": BOOLEAN,
        "compatibility_date": STRING,
        "compatibility_flags": array(STRING),
    },
    "id",
)


@operation(
    "GET",
    "The account's Workers, by name",
    operation_id="worker-script-list-workers",
    tag=TAG,
    result=array(SCRIPT_SUMMARY),
)
async def list_scripts(request: Request) -> Response:
    _, account = await account_access(request)
    rows = await asyncio.to_thread(services(request).scripts.list_script_summaries, account)
    return ok(rows)


MODULE_TYPES = {
    "esm": "application/javascript+module",
    "cjs": "application/javascript",
    "text": "text/plain",
    "json": "application/json",
    "wasm": "application/wasm",
    "data": "application/octet-stream",
    "sourcemap": "application/source-map",
}
MULTIPART = {"multipart/form-data": {"type": "object", "additionalProperties": {"type": "string"}}}


async def _modules_response(request: Request) -> Response:
    """The deployed version's modules as multipart/form-data, one part per module (as Cloudflare
    answers for module Workers), the main module named in `CF-Entrypoint`."""
    _, account = await account_access(request)
    await _not_quarantined(request, account)
    main, modules = await asyncio.to_thread(
        services(request).scripts.script_modules, account, _script(request)
    )
    boundary = secrets.token_hex(16)
    body = bytearray()
    for module in modules:
        kind = MODULE_TYPES.get(module.kind, "application/octet-stream")
        body += (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{module.name}"; filename="{module.name}"\r\n'
            f"Content-Type: {kind}\r\n\r\n"
        ).encode()
        body += module.data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return Response(
        bytes(body),
        media_type=f"multipart/form-data; boundary={boundary}",
        headers={"CF-Entrypoint": main},
    )


@operation(
    "GET",
    "Download a Worker's deployed modules (multipart/form-data)",
    operation_id="worker-script-download-worker",
    tag=TAG,
    raw=MULTIPART,
)
async def get_script(request: Request) -> Response:
    return await _modules_response(request)


@operation(
    "GET",
    "Download a Worker's deployed modules (multipart/form-data; CF-Entrypoint names the main one)",
    operation_id="worker-script-get-content",
    tag=TAG,
    raw=MULTIPART,
)
async def get_content(request: Request) -> Response:
    return await _modules_response(request)


@operation(
    "PATCH",
    "Change a Worker's settings (a multipart `settings` part, or JSON)",
    operation_id="worker-script-patch-settings",
    tag=TAG,
    body={
        "multipart/form-data": obj({"settings": SETTINGS}, "settings"),
        "application/json": SETTINGS,
    },
    body_required=True,
    result=SETTINGS,
)
async def patch_settings(request: Request) -> Response:
    """Only the script-level settings can change here (logpush, observability, tags,
    tail_consumers); bindings and compatibility change with a new version (10021 names them)."""
    _, account = await account_access(request)
    await _not_quarantined(request, account)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = await _settings_part(request)
    else:
        body = await json_body(request)
    current = await asyncio.to_thread(services(request).scripts.settings, account, _script(request))
    # Clients send back what they read: unchanged version-level fields are not a change.
    changes = {k: v for k, v in body.items() if current.get(k) != v or k in SCRIPT_LEVEL}
    result = await asyncio.to_thread(
        services(request).scripts.patch_settings, account, _script(request), changes
    )
    return ok(result)


SCRIPT_LEVEL = {"logpush", "observability", "tags", "tail_consumers"}


async def _settings_part(request: Request) -> dict[str, Any]:
    """A `settings` JSON part (wrangler, the Python SDK), or the npm SDK's bracketed fields
    (`settings[logpush]`, `settings[tags][]`, `settings[observability][enabled]`)."""
    limit = services(request).ctx.settings.max_upload_bytes
    try:
        form = await request.form(max_files=4, max_fields=64, max_part_size=limit)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", str(exc))
        raise ValidationError(f"The multipart body could not be parsed: {detail}") from exc
    try:
        part = form.get("settings")
        raw = await part.read() if isinstance(part, UploadFile) else part
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    finally:
        await form.close()
    if raw is None:
        if any(key.startswith("settings[") for key, _ in fields):
            return _bracketed(fields)
        raise ValidationError("Send the settings as a multipart part named `settings`.")
    settings = strict_json.loads(raw, "The settings part")
    if not isinstance(settings, dict):
        raise ValidationError("The settings part must be a JSON object.")
    return settings


_BRACKETS = re.compile(r"settings((?:\[[A-Za-z0-9_]*\])+)")
_SCALARS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _bracketed(fields: list[tuple[str, str]]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for key, value in fields:
        match = _BRACKETS.fullmatch(key)
        if match is None:
            raise ValidationError(f"Unexpected settings field {key!r}.")
        path = match.group(1)[1:-1].split("][")
        node = settings
        for name, following in itertools.pairwise(path):
            if not name or not isinstance(node, dict):
                raise ValidationError(f"Unexpected settings field {key!r}.")
            node = node.setdefault(name, [] if following == "" else {})
        scalar = _SCALARS.get(value, value)
        if path[-1] == "" and isinstance(node, list):
            node.append(scalar)
        elif path[-1] and isinstance(node, dict):
            node[path[-1]] = scalar
        else:
            raise ValidationError(f"Unexpected settings field {key!r}.")
    return settings


ACCOUNT_SETTINGS = obj({"default_usage_model": STRING, "green_compute": BOOLEAN})
FIXED_ACCOUNT_SETTINGS = {"default_usage_model": "standard", "green_compute": False}


@operation(
    "GET",
    "Account-level Workers settings (fixed: the standard usage model)",
    operation_id="worker-account-settings-fetch-worker-account-settings",
    tag=TAG,
    result=ACCOUNT_SETTINGS,
)
@operation(
    "PUT",
    "Account-level Workers settings: only the values Mayfly has are accepted (10021 otherwise)",
    operation_id="worker-account-settings-create-worker-account-settings",
    tag=TAG,
    body={"application/json": ACCOUNT_SETTINGS},
    body_required=True,
    result=ACCOUNT_SETTINGS,
)
@operation(
    "PATCH",
    "Account-level Workers settings, as PUT",
    tag=TAG,
    body={"application/json": ACCOUNT_SETTINGS},
    body_required=True,
    result=ACCOUNT_SETTINGS,
)
async def account_settings(request: Request) -> Response:
    await account_access(request)
    if request.method in ("PUT", "PATCH"):
        body = await json_body(request)
        for key, value in body.items():
            if key not in FIXED_ACCOUNT_SETTINGS:
                raise ValidationError(f"Unknown account setting {key!r}.")
            if value != FIXED_ACCOUNT_SETTINGS[key]:
                raise ValidationError(
                    f"Mayfly has one value for {key}: {FIXED_ACCOUNT_SETTINGS[key]!r}."
                )
    return ok(FIXED_ACCOUNT_SETTINGS)


SECRET_CHANGE = nullable(obj({"name": STRING, "text": STRING, "type": STRING}, "text"))


@operation(
    "PATCH",
    "Set and remove several secrets in one new version, deployed (`wrangler secret bulk`)",
    tag=TAG,
    body={
        "application/merge-patch+json": obj(
            {"secrets": {"type": "object", "additionalProperties": SECRET_CHANGE}}, "secrets"
        )
    },
    body_required=True,
    result={"type": "object", "additionalProperties": SECRET},
)
async def secrets_bulk(request: Request) -> Response:
    who, account = await account_access(request)
    await _not_quarantined(request, account)
    body = await json_body(request)
    version = await services(request).scripts.patch_secrets(
        who, account, _script(request), body.get("secrets"), deploy=True
    )
    # Cloudflare's shape: the Worker's secrets after the change, by name.
    return ok(
        {
            b["name"]: {"name": b["name"], "type": b["type"]}
            for b in version["resources"]["bindings"]
            if b["type"] == "secret_text"
        }
    )


@operation(
    "PATCH",
    "A new version from the newest one with secrets set or removed, not deployed "
    "(`wrangler versions secret put|bulk|delete`)",
    tag=TAG,
    body={
        "application/merge-patch+json": obj(
            {
                "env": {"type": "object", "additionalProperties": SECRET_CHANGE},
                "annotations": obj({"workers/message": STRING, "workers/tag": STRING}),
            },
            "env",
        )
    },
    body_required=True,
    result=VERSION,
)
async def patch_latest_version(request: Request) -> Response:
    who, account = await account_access(request)
    await _not_quarantined(request, account)
    body = await json_body(request)
    marks = body.get("annotations") or {}
    if not isinstance(marks, dict):
        raise ValidationError("`annotations` must be an object.")
    annotations = {k: v for k, v in marks.items() if isinstance(v, str)}
    version = await services(request).scripts.patch_secrets(
        who, account, _script(request), body.get("env"), deploy=False, annotations=annotations
    )
    return ok(version)


A = "/accounts/{account_id}"
S = A + "/workers/scripts/{script}"
routes = [
    Route(A + "/workers/services/{script}", get_service, methods=["GET"]),
    Route(A + "/workers/services/{script}", delete_script, methods=["DELETE"]),
    Route(A + "/workers/scripts", list_scripts, methods=["GET"]),
    Route(S, get_script, methods=["GET"]),
    Route(S, put_script, methods=["PUT"]),
    Route(S + "/content/v2", get_content, methods=["GET"]),
    Route(S + "/settings", patch_settings, methods=["PATCH"]),
    Route(S + "/secrets-bulk", secrets_bulk, methods=["PATCH"]),
    Route(A + "/workers/workers/{script}/versions/latest", patch_latest_version, methods=["PATCH"]),
    Route(A + "/workers/account-settings", account_settings, methods=["GET", "PUT", "PATCH"]),
    Route(S, delete_script, methods=["DELETE"]),
    Route(S + "/versions", post_version, methods=["POST"]),
    Route(S + "/versions", list_versions, methods=["GET"]),
    Route(S + "/versions/{version_id}", get_version, methods=["GET"]),
    Route(S + "/deployments", list_deployments, methods=["GET"]),
    Route(S + "/deployments", post_deployment, methods=["POST"]),
    Route(S + "/deployments/{deployment_id}", get_deployment, methods=["GET"]),
    Route(S + "/settings", get_settings, methods=["GET"]),
    Route(S + "/script-settings", patch_script_settings, methods=["PATCH"]),
    Route(S + "/script-settings", get_settings, methods=["GET"]),
    Route(S + "/secrets", list_secrets, methods=["GET"]),
    Route(S + "/secrets", put_secret, methods=["PUT"]),
    Route(S + "/secrets/{secret_name}", secret, methods=["GET", "DELETE"]),
    Route(S + "/subdomain", script_subdomain, methods=["GET", "POST", "DELETE"]),
    Route(S + "/references", references, methods=["GET"]),
    Route(A + "/workers/subdomain", get_account_subdomain, methods=["GET"]),
    Route(A + "/workers/subdomain", put_account_subdomain, methods=["PUT"]),
    Route(A + "/workers/subdomains/{name}", check_subdomain, methods=["GET"]),
    Route(A + "/workers/workers/{script}", get_worker, methods=["GET"]),
    Route(A + "/workers/tails/by-consumer/{script}", tails_by_consumer, methods=["GET"]),
    Route(A + "/workers/durable_objects/namespaces", durable_object_namespaces, methods=["GET"]),
]
