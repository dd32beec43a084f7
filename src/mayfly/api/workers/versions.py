"""A Worker's versions and deployments: upload without deploying, list, read, deploy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import in_account, services
from mayfly.api.envelope import json_body, ok, page_info, page_params
from mayfly.api.openapi import (
    STRING,
    array,
    obj,
    operation,
)
from mayfly.api.uploads import read_upload
from mayfly.api.workers.common import (
    DEPLOYMENT,
    TAG,
    UPLOAD_OPERATION,
    VERSION,
    script_name,
    store_upload,
    worker_access,
)
from mayfly.model import Account, Principal


@operation(
    "POST",
    "Upload a version without deploying it",
    operation_id="worker-versions-upload-version",
    **UPLOAD_OPERATION,
    result=VERSION,
)
async def post_version(request: Request) -> Response:
    """W10: store a version without deploying it."""
    who, account = await worker_access(request)
    plan = await read_upload(request, services(request).ctx.settings.max_upload_bytes)
    uploaded = await store_upload(request, who, account, plan, deploy=False)
    # wrangler `versions upload` prints `Worker Startup Time: <startup_time_ms> ms` unconditionally.
    return ok({**uploaded.version, "startup_time_ms": 0}, messages=uploaded.messages)


VERSIONS_PER_PAGE = 100  # wrangler asks once, without page/per_page, and shows the newest 10
NEWEST_FIRST_QUERY = {
    "page": {"type": "integer", "minimum": 1, "default": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": VERSIONS_PER_PAGE, "default": 100},
}
Lister = Callable[[Account, str, int, int], tuple[list[dict[str, Any]], int]]


async def _newest_first(
    request: Request, lister: Lister
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One page (`page`, `per_page` as Cloudflare's lists) of the Worker's versions or
    deployments, and its result_info."""
    name = script_name(request)

    def page(_: Principal, account: Account) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        number, per_page = page_params(request, VERSIONS_PER_PAGE, maximum=VERSIONS_PER_PAGE)
        items, total = lister(account, name, number, per_page)
        return items, page_info(number, per_page, len(items), total)

    return await in_account(request, page)


async def _one(
    request: Request, getter: Callable[[Account, str, str], dict[str, Any]], id_param: str
) -> dict[str, Any]:
    """One version or deployment of the Worker, by the id in the path parameter `id_param`."""
    name, wanted = script_name(request), request.path_params[id_param]
    return await in_account(request, lambda _, account: getter(account, name, wanted))


@operation(
    "GET",
    "A Worker's versions, newest first, a page at a time",
    operation_id="worker-versions-list-versions",
    tag=TAG,
    query=NEWEST_FIRST_QUERY,
    result=obj({"items": array(VERSION)}, "items"),
    result_info=True,
)
async def list_versions(request: Request) -> Response:
    """W16: newest first, a page at a time (`page`, `per_page` as Cloudflare's lists)."""
    items, info = await _newest_first(request, services(request).scripts.list_versions)
    return ok({"items": items}, result_info=info)


@operation(
    "GET", "One version", operation_id="worker-versions-get-version-detail", tag=TAG, result=VERSION
)
async def get_version(request: Request) -> Response:
    return ok(await _one(request, services(request).scripts.get_version, "version_id"))


@operation(
    "GET",
    "A Worker's deployments, newest first",
    operation_id="worker-deployments-list-deployments",
    tag=TAG,
    query=NEWEST_FIRST_QUERY,
    # `deployments` is what wrangler reads; `items` what the SDKs' page iterators read.
    result=obj({"deployments": array(DEPLOYMENT), "items": array(DEPLOYMENT)}, "deployments"),
    result_info=True,
)
async def list_deployments(request: Request) -> Response:
    items, info = await _newest_first(request, services(request).scripts.list_deployments)
    return ok({"deployments": items, "items": items}, result_info=info)


@operation(
    "GET",
    "One deployment (10404 if the Worker has no such deployment)",
    operation_id="worker-deployments-get-deployment",
    tag=TAG,
    result=DEPLOYMENT,
)
async def get_deployment(request: Request) -> Response:
    return ok(await _one(request, services(request).scripts.get_deployment, "deployment_id"))


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
    who, account = await worker_access(request)
    body = await json_body(request)
    deployment = await services(request).scripts.create_deployment(
        who, account, script_name(request), body
    )
    return ok(deployment)
