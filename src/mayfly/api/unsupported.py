"""Calls for products Mayfly does not serve: an honest 10021 naming the product (mayfly/surface.py)
instead of "No route" (7003). wrangler makes some of them before it uploads a Worker (it looks up
the queues a Worker names, the zones of its routes), so a project that needs them stops there.

Routes are another matter: wrangler uploads the Worker first and then `PUT …/routes`. Every Worker
is served at <script>.<account>.<domain>: an empty route list is accepted (nothing to do), any
route is refused with 10021, and the refusal undoes the deploy wrangler made just before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly import surface
from mayfly.api.auth import account_access, principal, services
from mayfly.api.envelope import ok
from mayfly.api.openapi import array, obj, operation
from mayfly.errors import MayflyError, ValidationError
from mayfly.model import Account, Principal
from mayfly.services.core import strict_json

TAG = "Not served"
# How recent a deploy a refused route list undoes (wrangler sets routes right after its upload).
UNDO_WINDOW = timedelta(seconds=60)
Handler = Callable[[Request], Awaitable[Response]]


def _refuse(config_key: str) -> ValidationError:
    refused = surface.REFUSED_CONFIG_KEYS[config_key]
    return ValidationError(refused.message(f"`{config_key}`"))


@operation(
    "GET",
    "A Worker's routes: always none (Workers live on their Mayfly URL)",
    tag=TAG,
    result=array(obj({})),
)
@operation(
    "PUT",
    "Set a Worker's routes: refused with 10021 unless the list is empty",
    tag=TAG,
    result=array(obj({})),
    body={"application/json": array(obj({}))},
)
async def script_routes(request: Request) -> Response:
    who, account = await account_access(request)
    if request.method == "PUT":
        raw = await request.body()
        body = strict_json.loads(raw, "The route list") if raw.strip() else []
        if body != []:
            await undo_recent_deploy(request, who, account, request.path_params["script"])
            raise _refuse("routes")
    return ok([])


async def undo_recent_deploy(request: Request, who: Principal, account: Account, name: str) -> None:
    """wrangler deploys a Worker, then sets its routes: a refusal of the routes also undoes the
    deploy that came right before them (within UNDO_WINDOW), so a `wrangler deploy` with routes
    leaves nothing changed. The previous version is deployed again; a Worker that had none is
    deleted. The uploaded version itself stays in the version list."""
    scripts = services(request).scripts
    try:
        recent, _ = await asyncio.to_thread(scripts.list_deployments, account, name, 1, 2)
    except MayflyError:
        return  # no such Worker: nothing was deployed
    if not recent:
        return
    latest = datetime.fromisoformat(recent[0]["created_on"].replace("Z", "+00:00"))
    if services(request).ctx.clock.now() - latest > UNDO_WINDOW:
        return
    if len(recent) == 1:
        await scripts.delete(who, account, name)
        return
    previous = recent[1]["versions"][0]["version_id"]
    message = "Redeployed: the routes of the deploy before were refused (10021)."
    await scripts.create_deployment(
        who,
        account,
        name,
        {
            "versions": [{"version_id": previous, "percentage": 100}],
            "annotations": {"workers/message": message},
        },
    )


@operation("GET", "Zones: Mayfly has none (refused with 10021)", tag=TAG, auth="token")
@operation("POST", "Zones: Mayfly has none (refused with 10021)", tag=TAG, auth="token")
async def zones(request: Request) -> Response:
    await principal(request)
    raise _refuse("routes")


async def _queues(request: Request) -> Response:
    await account_access(request)
    raise _refuse("queues")


async def _workflows(request: Request) -> Response:
    await account_access(request)
    raise _refuse("workflows")


def _documented(handler: Handler, product: str) -> Handler:
    for method in ("GET", "POST"):
        handler = operation(method, f"{product}: not served by Mayfly (10021)", tag=TAG)(handler)
    return handler


A = "/accounts/{account_id}"
for _handler, _product_name in (
    (_queues, "Queues"),
    (_workflows, "Workflows"),
):
    _documented(_handler, _product_name)

routes = [
    Route(A + "/workers/scripts/{script}/routes", script_routes, methods=["GET", "PUT"]),
    Route("/zones", zones, methods=["GET", "POST"]),
    Route("/zones/{zone_id}/workers/routes", zones, methods=["GET", "POST"]),
    Route(A + "/queues", _queues, methods=["GET", "POST"]),
    Route(A + "/queues/{queue_id}", _queues, methods=["GET", "POST"]),
    Route(A + "/workflows", _workflows, methods=["GET", "POST"]),
    Route(A + "/workflows/{workflow_name}", _workflows, methods=["GET", "POST"]),
]
