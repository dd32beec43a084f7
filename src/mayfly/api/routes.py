"""The public ASGI app: /client/v4 (Cloudflare's envelope) plus the pages."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mayfly import __version__
from mayfly.api import (
    assets,
    claims,
    d1,
    identity,
    kv,
    oauth,
    provisioning,
    r2,
    schedules,
    tail,
    unsupported,
    user_tokens,
    workers,
)
from mayfly.api.envelope import failure, mayfly_error_handler, unexpected_error_handler
from mayfly.api.head import HeadAsGet
from mayfly.api.limits import BodyLimits
from mayfly.api.metrics import RequestMetrics
from mayfly.api.openapi import build_document, operation
from mayfly.errors import MayflyError
from mayfly.services.container import Services

_SLASHES = re.compile(r"/{2,}")


class CollapseSlashes:
    """wrangler with a trailing slash in its base URL sends `/client/v4//accounts/…`."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "//" in scope["path"]:
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = re.sub(rb"/{2,}", b"/", raw)
        await self.app(scope, receive, send)


API_PREFIXES = ("/client/v4", "/accounts", "/user", "/memberships", "/provisioning", "/zones")


async def not_found(request: Request, exc: Exception) -> Response:
    path = request.url.path
    if path.startswith(API_PREFIXES):
        return failure(7003, f"No route for {request.method} {path}.", 404)
    return JSONResponse({"error": "not found"}, status_code=404)


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return failure(10405, f"{request.method} is not allowed on {request.url.path}.", 405)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 4xx (a multipart body without a boundary, …) in the envelope, not as text."""
    assert isinstance(exc, HTTPException)
    code = 10413 if exc.status_code == 413 else 10021
    return failure(code, str(exc.detail), exc.status_code)


async def index(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/dashboard", status_code=303)  # a person in a browser
    return JSONResponse({"name": "mayfly", "version": __version__, "api": "/client/v4"})


@operation(
    "GET",
    "This OpenAPI document, generated from the route table (no token)",
    tag="Meta",
    auth="none",
    raw={"application/json": {"type": "object", "required": ["openapi", "info", "paths"]}},
)
async def openapi_json(request: Request) -> Response:
    return Response(_openapi_bytes(), media_type="application/json")


def openapi_document() -> dict[str, Any]:
    """Built from api_routes() and what each handler declares (api/openapi.py)."""
    return build_document(api_routes(), version=__version__)


@functools.cache
def _openapi_bytes() -> bytes:
    return json.dumps(openapi_document()).encode()


def api_routes() -> list[BaseRoute]:
    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *provisioning.routes,
        *identity.routes,
        *schedules.routes,
        *workers.routes,
        *kv.routes,
        *r2.routes,
        *d1.routes,
        *tail.routes,
        *assets.routes,
        *claims.routes,
        *user_tokens.routes,
        *unsupported.routes,
    ]


def build_public_app(services: Services, extra_routes: list[BaseRoute] | None = None) -> ASGIApp:
    app = Starlette(
        routes=[
            Route("/", index),
            Mount("/client/v4", routes=api_routes()),
            *oauth.routes,
            *tail.socket_routes,
            *(extra_routes or []),
            # wrangler builds URLs by concatenation, so a base URL without /client/v4 works
            # against Cloudflare's stub servers too (spec §2); the API answers there as well.
            *api_routes(),
        ],
        # Inside Starlette: it shares the scope the router writes the matched route into.
        middleware=[Middleware(RequestMetrics, metrics=services.ctx.metrics)],
        exception_handlers={
            MayflyError: mayfly_error_handler,
            HTTPException: http_error,
            404: not_found,
            405: method_not_allowed,
            Exception: unexpected_error_handler,
        },
    )
    app.state.services = services
    return CollapseSlashes(HeadAsGet(BodyLimits(app, services.ctx.settings)))
