"""The internal API the data plane asks (routes, code). Its own listener, never the public port.

Every request carries the per-boot secret in `X-Mayfly-Internal-Secret`.
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mayfly.errors import MayflyError
from mayfly.services.container import Services

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


def _services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def route(request: Request) -> Response:
    host = request.query_params.get("host", "")
    found = await asyncio.to_thread(_services(request).routing.route, host)
    return JSONResponse(found.to_json())


async def version(request: Request) -> Response:
    try:
        code = await asyncio.to_thread(
            _services(request).routing.version_code, request.path_params["version_id"]
        )
    except MayflyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse(code)


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def build_internal_app(services: Services, secret: str) -> ASGIApp:
    app = Starlette(
        routes=[
            Route("/internal/v1/route", route, methods=["GET"]),
            Route("/internal/v1/versions/{version_id}", version, methods=["GET"]),
            Route("/internal/v1/health", health, methods=["GET"]),
        ]
    )
    app.state.services = services
    return RequireSecret(app, secret)
