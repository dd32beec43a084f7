"""The public app's request metrics (services/core/metrics.py says what is measured), and the
`/metrics` app served on `--metrics-port`."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mayfly.services.core.metrics import Metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def route_class(scope: Scope) -> str:
    """The matched route's path template (with its mounts' prefixes); never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str) or isinstance(route, Mount):  # a mount: nothing inside matched
        return "unmatched"
    return f"{scope.get('root_path', '')}{path}" or "/"


class RequestMetrics:
    """Sits inside Starlette (it sees the routing's choice in the scope it shares)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        m, route, method = self.metrics, route_class(scope), scope.get("method", "")
        m.api_requests.labels(route, method, str(status)).inc()
        m.api_latency.labels(route, method).observe(seconds)
        if status == 429:
            m.limit_refusals.labels(route).inc()
        if method != "POST":
            return
        if route.endswith("/provisioning/previews/challenge") and status == 200:
            m.challenges.inc()
        elif route.endswith("/provisioning/previews"):
            if status == 200:
                m.accounts_created.inc()
            elif status == 403:
                m.pow_failures.inc()


def build_metrics_app(metrics: Metrics) -> ASGIApp:
    from starlette.applications import Starlette

    async def exposition(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", exposition, methods=["GET"])])
