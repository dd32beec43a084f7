"""W1–W21: Workers, versions, deployments, settings, subdomains (spec §1, §5)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import account_access, services
from mayfly.api.envelope import failure, json_body, ok, page_params
from mayfly.api.uploads import read_upload
from mayfly.errors import SecretNotFound, ValidationError
from mayfly.model import Account, iso


def _script(request: Request) -> str:
    return str(request.path_params["script"])


def _strict(request: Request) -> bool:
    return request.query_params.get("bindings_inherit") == "strict"


def worker_url(request: Request, account: Account, script: str) -> str:
    return services(request).ctx.worker_url(script, account.name)


async def get_service(request: Request) -> Response:
    """W1: 10007 for a new Worker (wrangler's first deploy depends on it)."""
    _, account = await account_access(request)
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


async def put_script(request: Request) -> Response:
    """W9: store a version and deploy it (creates the Worker if new)."""
    who, account = await account_access(request)
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


async def post_version(request: Request) -> Response:
    """W10: store a version without deploying it."""
    who, account = await account_access(request)
    svc = services(request)
    plan = await read_upload(request, svc.ctx.settings.max_upload_bytes)
    uploaded = await svc.scripts.upload(
        who, account, _script(request), plan, deploy=False, strict_inherit=_strict(request)
    )
    # wrangler `versions upload` prints `Worker Startup Time: <startup_time_ms> ms` unconditionally.
    return ok({**uploaded.version, "startup_time_ms": 0}, messages=uploaded.messages)


VERSIONS_PER_PAGE = 100  # wrangler asks once, without page/per_page, and shows the newest 10


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


async def get_version(request: Request) -> Response:
    _, account = await account_access(request)
    version = await asyncio.to_thread(
        services(request).scripts.get_version,
        account,
        _script(request),
        request.path_params["version_id"],
    )
    return ok(version)


async def list_deployments(request: Request) -> Response:
    _, account = await account_access(request)
    items = await asyncio.to_thread(
        services(request).scripts.list_deployments, account, _script(request)
    )
    return ok({"deployments": items})


async def post_deployment(request: Request) -> Response:
    who, account = await account_access(request)
    body = await json_body(request)
    deployment = await services(request).scripts.create_deployment(
        who, account, _script(request), body
    )
    return ok(deployment)


async def get_settings(request: Request) -> Response:
    _, account = await account_access(request)
    return ok(
        await asyncio.to_thread(services(request).scripts.settings, account, _script(request))
    )


async def patch_script_settings(request: Request) -> Response:
    _, account = await account_access(request)
    body = await json_body(request)
    result = await asyncio.to_thread(
        services(request).scripts.patch_settings, account, _script(request), body
    )
    return ok(result)


async def list_secrets(request: Request) -> Response:
    _, account = await account_access(request)
    bindings = await asyncio.to_thread(
        services(request).scripts.current_bindings, account, _script(request)
    )
    return ok(
        [{"name": b["name"], "type": b["type"]} for b in bindings if b["type"] == "secret_text"]
    )


async def put_secret(request: Request) -> Response:
    """W14: a secret change makes a new version and deploys it (10007 for a missing Worker)."""
    who, account = await account_access(request)
    body = await json_body(request)
    return ok(await services(request).scripts.put_secret(who, account, _script(request), body))


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


async def get_account_subdomain(request: Request) -> Response:
    _, account = await account_access(request)
    return ok({"subdomain": account.subdomain})


async def check_subdomain(request: Request) -> Response:
    """W4: is a subdomain free? Every account's subdomain is its (unique) name."""
    _, account = await account_access(request)
    wanted = request.path_params["name"]
    if wanted == account.subdomain:
        return ok({"available": False, "owned": True})
    return failure(10031, f"The subdomain {wanted!r} is taken or reserved.", 409)


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


async def get_worker(request: Request) -> Response:
    """W8: the Worker and its URL (wrangler prints subdomain.url's hostname)."""
    _, account = await account_access(request)
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


async def script_subdomain(request: Request) -> Response:
    """W13: enable or disable the Worker on the account's subdomain."""
    _, account = await account_access(request)
    if request.method == "GET":
        row, _ = await asyncio.to_thread(
            services(request).scripts.current, account, _script(request)
        )
        return ok({"enabled": bool(row.subdomain_enabled), "previews_enabled": False})
    body = await json_body(request)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("`enabled` must be true or false.")
    return ok(
        await services(request).scripts.set_subdomain_enabled(account, _script(request), enabled)
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


async def tails_by_consumer(request: Request) -> Response:
    await account_access(request)
    return ok([])


async def durable_object_namespaces(request: Request) -> Response:
    await account_access(request)
    return ok([], result_info={"page": 1, "per_page": 1000, "count": 0, "total_count": 0})


async def delete_script(request: Request) -> Response:
    who, account = await account_access(request)
    await services(request).scripts.delete(who, account, _script(request))
    return ok(None)


A = "/accounts/{account_id}"
S = A + "/workers/scripts/{script}"
routes = [
    Route(A + "/workers/services/{script}", get_service, methods=["GET"]),
    Route(A + "/workers/services/{script}", delete_script, methods=["DELETE"]),
    Route(S, put_script, methods=["PUT"]),
    Route(S, delete_script, methods=["DELETE"]),
    Route(S + "/versions", post_version, methods=["POST"]),
    Route(S + "/versions", list_versions, methods=["GET"]),
    Route(S + "/versions/{version_id}", get_version, methods=["GET"]),
    Route(S + "/deployments", list_deployments, methods=["GET"]),
    Route(S + "/deployments", post_deployment, methods=["POST"]),
    Route(S + "/settings", get_settings, methods=["GET"]),
    Route(S + "/script-settings", patch_script_settings, methods=["PATCH"]),
    Route(S + "/script-settings", get_settings, methods=["GET"]),
    Route(S + "/secrets", list_secrets, methods=["GET"]),
    Route(S + "/secrets", put_secret, methods=["PUT"]),
    Route(S + "/secrets/{secret_name}", secret, methods=["GET", "DELETE"]),
    Route(S + "/subdomain", script_subdomain, methods=["GET", "POST"]),
    Route(S + "/references", references, methods=["GET"]),
    Route(A + "/workers/subdomain", get_account_subdomain, methods=["GET"]),
    Route(A + "/workers/subdomain", put_account_subdomain, methods=["PUT"]),
    Route(A + "/workers/subdomains/{name}", check_subdomain, methods=["GET"]),
    Route(A + "/workers/workers/{script}", get_worker, methods=["GET"]),
    Route(A + "/workers/tails/by-consumer/{script}", tails_by_consumer, methods=["GET"]),
    Route(A + "/workers/durable_objects/namespaces", durable_object_namespaces, methods=["GET"]),
]
