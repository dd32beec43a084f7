"""The internal API the data plane asks (routes, code). Its own listener, never the public port.

Every request carries the per-boot secret in `X-Mayfly-Internal-Secret`.
"""

from __future__ import annotations

import asyncio
import hmac
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mayfly.api import internal_d1, internal_r2
from mayfly.api.auth import in_thread, services
from mayfly.api.bodies import read_capped
from mayfly.errors import MayflyError
from mayfly.services.container import Services
from mayfly.services.core import strict_json

SECRET_HEADER = "x-mayfly-internal-secret"


class RequireSecret:
    def __init__(self, app: ASGIApp, secret: str):
        self.app = app
        self.secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(SECRET_HEADER.encode(), b"")
            if not hmac.compare_digest(given, self.secret):
                await JSONResponse({"error": "forbidden"}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def route(request: Request) -> Response:
    """`?host=`; with `code=1`, also the code of the version it serves unless it is `have`."""
    params = request.query_params
    routing = services(request).routing
    host = params.get("host", "")
    if params.get("code") == "1":
        answer = await asyncio.to_thread(routing.route_with_code, host, params.get("have", ""))
        services(request).ctx.metrics.worker_route_lookups.labels(answer["status"]).inc()
        return JSONResponse(answer)
    found = await asyncio.to_thread(routing.route, host)
    services(request).ctx.metrics.worker_route_lookups.labels(found.status).inc()
    return JSONResponse(found.to_json())


async def version(request: Request) -> Response:
    routing, version_id = services(request).routing, request.path_params["version_id"]
    try:
        code = await in_thread(lambda: routing.version_code(version_id))
    except MayflyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse(code)


def _kv_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    return int(value) if value not in (None, "") else None


async def kv_value(request: Request) -> Response:
    """A tenant's KV binding, through the dispatcher: the platform fixed the namespace id."""
    kv = services(request).kv.store  # unchecked: the namespace came from its bindings
    ns = request.path_params["namespace_id"]
    key = request.query_params.get("key", "")
    try:
        if request.method == "GET":
            entry = await in_thread(lambda: kv.get(ns, key))
            headers = {"x-mayfly-kv-metadata": json.dumps(entry.metadata)}
            if entry.expiration is not None:
                headers["x-mayfly-kv-expiration"] = str(entry.expiration)
            return Response(entry.value, media_type="application/octet-stream", headers=headers)
        if request.method == "PUT":
            raw_meta = request.headers.get("x-mayfly-kv-metadata")
            metadata = strict_json.loads(raw_meta, "The metadata") if raw_meta else None
            data = await _kv_value_body(request)
            await in_thread(
                lambda: kv.put(
                    ns,
                    key,
                    data,
                    metadata=metadata,
                    expiration=_kv_int(request, "expiration"),
                    expiration_ttl=_kv_int(request, "expiration_ttl"),
                )
            )
            return JSONResponse({"ok": True})
        await in_thread(lambda: kv.delete(ns, key))
        return JSONResponse({"ok": True})
    except MayflyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


async def _kv_value_body(request: Request) -> bytes:
    """A tenant's value, counted as it streams: nothing over the limit is held."""
    limit = services(request).ctx.settings.max_kv_value_bytes
    return await read_capped(request, limit, f"KV values are at most {limit} bytes.")


async def kv_keys(request: Request) -> Response:
    kv, ns, params = (
        services(request).kv.store,
        request.path_params["namespace_id"],
        request.query_params,
    )
    try:
        limit = int(params.get("limit", "1000"))
        items, cursor = await in_thread(
            lambda: kv.list_keys(ns, params.get("prefix", ""), params.get("cursor", ""), limit)
        )
    except MayflyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"keys": items, "list_complete": cursor == "", "cursor": cursor})


async def service_host(request: Request) -> Response:
    """The host of a service binding's target, a Worker of the caller's account (else 404)."""
    routing, script_id = services(request).routing, request.path_params["script_id"]
    caller = request.query_params.get("caller", "")
    try:
        host = await in_thread(lambda: routing.service_host(script_id, caller))
    except MayflyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse({"host": host})


async def tail_events(request: Request) -> Response:
    """Batched tail events from the dispatcher, fanned out to open tail sessions."""
    try:
        body = json.loads(await request.body())
        account_id, script, events = body["account_id"], body["script"], body["events"]
    except (ValueError, KeyError, TypeError, RecursionError):
        # RecursionError: a tenant logged something nested thousands deep; the batch is dropped.
        return JSONResponse({"error": "expected {account_id, script, events}"}, status_code=400)
    if not isinstance(events, list):
        return JSONResponse({"error": "events must be a list"}, status_code=400)
    delivered = services(request).tails.hub.publish(account_id, script, events)
    return JSONResponse({"delivered": delivered})


async def asset(request: Request) -> Response:
    """One asset's bytes for the dispatcher (the version's manifest names account and hash)."""
    assets, account_id = services(request).assets, request.path_params["account_id"]
    blob = request.path_params["hash"]
    try:
        data, content_type = await in_thread(lambda: assets.read(account_id, blob))
    except MayflyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    headers = {"x-mayfly-content-type": content_type} if content_type else {}
    return Response(data, media_type="application/octet-stream", headers=headers)


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def build_internal_app(services: Services, secret: str) -> ASGIApp:
    app = Starlette(
        routes=[
            Route("/internal/v1/route", route, methods=["GET"]),
            Route("/internal/v1/versions/{version_id}", version, methods=["GET"]),
            Route("/internal/v1/kv/{namespace_id}", kv_value, methods=["GET", "PUT", "DELETE"]),
            Route("/internal/v1/kv/{namespace_id}/keys", kv_keys, methods=["GET"]),
            *internal_r2.routes,
            Route("/internal/v1/services/{script_id}", service_host, methods=["GET"]),
            *internal_d1.routes,
            Route("/internal/v1/tail-events", tail_events, methods=["POST"]),
            Route("/internal/v1/assets/{account_id}/{hash}", asset, methods=["GET"]),
            Route("/internal/v1/health", health, methods=["GET"]),
        ]
    )
    app.state.services = services
    return RequireSecret(app, secret)
