"""A fake of the control plane's internal API (routes, versions, KV values, tail events), for the
dispatcher's tests.

It answers as src/mayfly/api/internal.py does, counts what it is asked, and can be made slow or
unavailable.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp


def esm(source: str) -> dict[str, str]:
    return {"name": "index.js", "kind": "esm", "text": source}


class FakeControlPlane:
    def __init__(self, secret: str):
        self.secret = secret
        self.routes: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.down = False
        self.delay = 0.0
        self.route_lookups: collections.Counter[str] = collections.Counter()
        # Code sent, with a route answer or on its own; `version_requests`: on its own only.
        self.version_fetches: collections.Counter[str] = collections.Counter()
        self.version_requests: collections.Counter[str] = collections.Counter()
        self.refused = 0  # requests without the right secret
        self.kv: dict[tuple[str, str], bytes] = {}  # (namespace id, key) -> value
        self.tail_batches: list[dict[str, Any]] = []
        # Answered 500 while `down`: route lookups by host, and the tail batches refused.
        self.failed_lookups: collections.Counter[str] = collections.Counter()
        self.failed_tail_batches: list[dict[str, Any]] = []

    def serve(self, host: str, version_id: str, **route: Any) -> None:
        self.routes[host] = {
            "status": "ok",
            "account_id": "acct",
            "script": host.split(".")[0],
            "version_id": version_id,
            "expires_at_ms": None,
            "message": None,
            **route,
        }

    def refuse(self, host: str, status: str, message: str) -> None:
        self.routes[host] = {
            "status": status,
            "account_id": None,
            "script": None,
            "version_id": None,
            "expires_at_ms": None,
            "message": message,
        }

    def add_version(
        self,
        version_id: str,
        modules: list[dict[str, str]],
        *,
        main: str = "index.js",
        env: dict[str, Any] | None = None,
        flags: list[str] | None = None,
        kv: dict[str, str] | None = None,
    ) -> None:
        self.versions[version_id] = {
            "version_id": version_id,
            "account_id": "acct",
            "script": "script",
            "main_module": main,
            "compatibility_date": "2025-01-01",
            "compatibility_flags": flags or [],
            "modules": modules,
            "env": env or {},
            "kv_namespaces": [
                {"name": name, "namespace_id": ns} for name, ns in (kv or {}).items()
            ],
        }

    def app(self) -> ASGIApp:
        return Starlette(
            routes=[
                Route("/internal/v1/route", self._route),
                Route("/internal/v1/versions/{version_id}", self._version),
                Route("/internal/v1/kv/{namespace_id}", self._kv, methods=["GET", "PUT", "DELETE"]),
                Route("/internal/v1/tail-events", self._tail_events, methods=["POST"]),
            ]
        )

    def _refuse(self, request: Request) -> Response | None:
        if request.headers.get("x-mayfly-internal-secret") != self.secret:
            self.refused += 1
            return JSONResponse({"error": "forbidden"}, status_code=403)
        if self.down:
            return JSONResponse({"error": "down"}, status_code=500)
        return None

    async def _route(self, request: Request) -> Response:
        host = request.query_params["host"]
        refused = self._refuse(request)
        if refused is not None:
            if refused.status_code == 500:
                self.failed_lookups[host] += 1
            return refused
        self.route_lookups[host] += 1
        # Answer what was true when the question arrived, however slowly.
        answer = self.routes.get(host) or {
            "status": "unknown",
            "account_id": None,
            "script": None,
            "version_id": None,
            "expires_at_ms": None,
            "message": f"No Worker is served at {host}.",
        }
        await asyncio.sleep(self.delay)
        version_id = answer.get("version_id")
        if (
            request.query_params.get("code") == "1"
            and answer["status"] == "ok"
            and version_id != request.query_params.get("have")
            and version_id in self.versions
        ):
            self.version_fetches[version_id] += 1
            answer = {**answer, "version": self.versions[version_id]}
        return JSONResponse(answer)

    async def _version(self, request: Request) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        version_id = request.path_params["version_id"]
        self.version_fetches[version_id] += 1
        self.version_requests[version_id] += 1
        if version_id not in self.versions:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(self.versions[version_id])

    async def _kv(self, request: Request) -> Response:
        """Values only: no metadata, expiry or listing (tests/runtime/test_kv.py has the real one)."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        await asyncio.sleep(self.delay)
        entry = (request.path_params["namespace_id"], request.query_params["key"])
        if request.method == "PUT":
            self.kv[entry] = await request.body()
        elif request.method == "DELETE":
            self.kv.pop(entry, None)
        elif entry not in self.kv:
            return JSONResponse({"error": "not found"}, status_code=404)
        else:
            return Response(self.kv[entry], headers={"x-mayfly-kv-metadata": "null"})
        return JSONResponse({"ok": True})

    async def _tail_events(self, request: Request) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            if refused.status_code == 500:
                self.failed_tail_batches.append(await request.json())
            return refused
        await asyncio.sleep(self.delay)
        self.tail_batches.append(await request.json())
        return JSONResponse({"delivered": 0})
