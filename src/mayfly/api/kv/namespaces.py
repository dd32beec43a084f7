"""KV namespaces: create, list (a page at a time), read, rename, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import account_access, actor, in_account, in_thread, services
from mayfly.api.envelope import json_body, ok, paginate
from mayfly.api.kv.common import (
    NAMESPACE,
    TAG,
    TITLE,
)
from mayfly.api.openapi import (
    array,
    operation,
)


@operation(
    "POST",
    "Create a namespace",
    operation_id="workers-kv-namespace-create-a-namespace",
    tag=TAG,
    body=TITLE,
    body_required=True,
    examples={"application/json": {"title": "my-namespace"}},
    result=NAMESPACE,
)
async def create_namespace(request: Request) -> Response:
    who, account = await account_access(request)
    body = await json_body(request)
    kv = services(request).kv
    return ok(await in_thread(lambda: kv.create_namespace(account, body.get("title"), actor(who))))


@operation(
    "GET",
    "The account's namespaces",
    operation_id="workers-kv-namespace-list-namespaces",
    tag=TAG,
    query={
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 1000},
        "order": {"type": "string", "enum": ["id", "title"]},
        "direction": {"type": "string", "enum": ["asc", "desc"]},
    },
    result=array(NAMESPACE),
    result_info=True,
)
async def list_namespaces(request: Request) -> Response:
    """Page-until-empty (the SDK) and page/per_page with total_count (wrangler) both work."""
    order = request.query_params.get("order", "title")
    direction = request.query_params.get("direction", "asc")
    kv = services(request).kv
    items = await in_account(
        request, lambda _, account: kv.list_namespaces(account, order, direction)
    )
    chunk, info = paginate(items, request)
    return ok(chunk, result_info=info)


@operation(
    "GET",
    "One namespace",
    operation_id="workers-kv-namespace-get-a-namespace",
    tag=TAG,
    result=NAMESPACE,
)
@operation(
    "PUT",
    "Rename a namespace",
    operation_id="workers-kv-namespace-rename-a-namespace",
    tag=TAG,
    body=TITLE,
    body_required=True,
    examples={"application/json": {"title": "my-namespace"}},
    result=NAMESPACE,
)
@operation(
    "DELETE",
    "Delete a namespace and its keys",
    operation_id="workers-kv-namespace-remove-a-namespace",
    tag=TAG,
)
async def namespace(request: Request) -> Response:
    kv = services(request).kv
    ns = request.path_params["namespace_id"]
    if request.method == "GET":
        return ok(await in_account(request, lambda _, account: kv.get_namespace(account, ns)))
    if request.method == "PUT":
        _, account = await account_access(request)
        body = await json_body(request)
        return ok(await in_thread(lambda: kv.rename_namespace(account, ns, body.get("title"))))
    await in_account(request, lambda who, account: kv.delete_namespace(account, ns, actor(who)))
    return ok(None)
