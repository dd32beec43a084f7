"""A Worker as a whole: upload-and-deploy, read, list, delete, serve on workers.dev."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import account_access, in_account, services
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    STRING,
    TIMESTAMP,
    array,
    nullable,
    obj,
    operation,
)
from mayfly.api.uploads import read_upload
from mayfly.api.workers.common import (
    SCRIPT_SUBDOMAIN,
    TAG,
    TIMES,
    UPLOAD_OPERATION,
    in_worker,
    script_name,
    store_upload,
    worker_access,
    worker_url,
)
from mayfly.errors import ValidationError
from mayfly.model import iso


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
    scripts, name = services(request).scripts, script_name(request)
    row, version = await in_worker(request, lambda _, account: scripts.current(account, name))
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
    **UPLOAD_OPERATION,
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
    who, account = await worker_access(request)
    plan = await read_upload(request, services(request).ctx.settings.max_upload_bytes)
    uploaded = await store_upload(request, who, account, plan, deploy=True)
    version = uploaded.version
    return ok(
        {
            "id": script_name(request),
            "etag": version["resources"]["script"]["etag"],
            "handlers": version["resources"]["script"]["handlers"],
            "created_on": version["metadata"]["created_on"],
            "modified_on": version["metadata"]["created_on"],
            "compatibility_date": version["resources"]["script_runtime"]["compatibility_date"],
            "compatibility_flags": version["resources"]["script_runtime"]["compatibility_flags"],
            "deployment_id": version["id"],
            "startup_time_ms": 0,
            "usage_model": "standard",
            "url": worker_url(request, account, script_name(request)),
        },
        messages=uploaded.messages,
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
    scripts, name = services(request).scripts, script_name(request)
    account, (row, _) = await in_worker(
        request, lambda _, account: (account, scripts.current(account, name))
    )
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
    scripts, name = services(request).scripts, script_name(request)
    if request.method == "GET":
        row, _ = await in_account(request, lambda _, account: scripts.current(account, name))
        return ok({"enabled": bool(row.subdomain_enabled), "previews_enabled": False})
    _, account = await account_access(request)
    body = {"enabled": False} if request.method == "DELETE" else await json_body(request)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("`enabled` must be true or false.")
    return ok(await scripts.set_subdomain_enabled(account, name, enabled))


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
    scripts, name = services(request).scripts, script_name(request)
    await in_account(request, lambda _, account: scripts.current(account, name))  # 10007
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
    await services(request).scripts.delete(who, account, script_name(request))
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
    scripts = services(request).scripts
    return ok(await in_account(request, lambda _, account: scripts.list_script_summaries(account)))
