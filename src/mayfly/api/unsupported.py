"""Calls for products Mayfly does not serve: an honest 10021 naming the product (mayfly/surface.py)
instead of "No route" (7003). wrangler makes some of them before it uploads a Worker (it looks up
the queues a Worker names, the zones of its routes), so a project that needs them stops there.

Routes are another matter: wrangler uploads the Worker first and then `PUT …/routes`. Every Worker
is served at <script>.<account>.<domain>: an empty route list is accepted (nothing to do) and any
route is refused with 10021. The refusal changes nothing: a deploy that came before it stays (an
SDK client that sets routes right after creating a Worker keeps the Worker), and the message says
so, with the Worker's URL, so `wrangler deploy` ends on one clear error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly import surface
from mayfly.api.auth import account_access, in_thread, principal, services
from mayfly.api.envelope import ok
from mayfly.api.openapi import array, obj, operation
from mayfly.errors import MayflyError, ValidationError
from mayfly.model import Account
from mayfly.services.core import strict_json

TAG = "Not served"
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
    _, account = await account_access(request)
    if request.method == "PUT":
        raw = await request.body()
        body = strict_json.loads(raw, "The route list") if raw.strip() else []
        if body != []:
            refusal = _refuse("routes")
            served = await _served_at(request, account, request.path_params["script"])
            if served:
                refusal.message += (
                    f" The Worker itself is deployed ({served}); only its routes were not set."
                )
            raise refusal
    return ok([])


async def _served_at(request: Request, account: Account, name: str) -> str | None:
    """The URL a Worker with a deployment serves at (None: no such Worker, or not deployed)."""
    try:
        scripts = services(request).scripts
        recent, _ = await in_thread(lambda: scripts.list_deployments(account, name, 1, 1))
    except MayflyError:
        return None  # no such Worker
    if not recent:
        return None
    return services(request).ctx.worker_url(name, account.name)


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
