"""Every request body is capped while it streams, per route class (with or without Content-Length).

A body over its class's limit becomes 413 in Cloudflare's envelope (code 10413). The limit is
enforced on `receive`, so nothing above it is ever buffered, and a declared Content-Length over it
fails the first read without reading a byte: handlers check credentials before they read, so a
client with a junk token gets its 401 whatever it sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mayfly.api.envelope import failure
from mayfly.errors import PayloadTooLarge, ValidationError
from mayfly.settings import Settings

# Room for what frames a value in a multipart body: boundaries, part headers, the metadata part.
MULTIPART_OVERHEAD = 1024 * 1024
API_PREFIX = "/client/v4"

_A = r"/accounts/[^/]+"
_NS = _A + r"/storage/kv/namespaces/[^/]+"


@dataclass(frozen=True)
class RouteClass:
    name: str
    setting: str  # the setting that raises the limit, named in the 413 message
    limit: int


def _patterns(s: Settings) -> list[tuple[str, re.Pattern[str], RouteClass]]:
    script = RouteClass(
        "Worker upload", "max_upload_bytes", s.max_upload_bytes + MULTIPART_OVERHEAD
    )
    kv_value = RouteClass(
        "KV value", "max_kv_value_bytes", s.max_kv_value_bytes + MULTIPART_OVERHEAD
    )
    kv_bulk = RouteClass("KV bulk request", "max_kv_bulk_bytes", s.max_kv_bulk_bytes)
    assets = RouteClass("static-assets upload", "max_asset_body_bytes", s.max_asset_body_bytes)
    manifest = RouteClass(
        "static-assets manifest", "max_manifest_body_bytes", s.max_manifest_body_bytes
    )
    form = RouteClass("form", "max_form_body_bytes", s.max_form_body_bytes)
    r2_object = RouteClass("R2 object", "max_r2_object_bytes", s.max_r2_object_bytes)
    d1_import = RouteClass(
        "D1 import file", "d1_max_database_bytes_permanent", s.d1_max_database_bytes_permanent
    )
    return [
        ("PUT", re.compile(_A + r"/workers/scripts/[^/]+"), script),
        ("POST", re.compile(_A + r"/workers/scripts/[^/]+/versions"), script),
        ("PUT", re.compile(_NS + r"/values/.+"), kv_value),
        ("*", re.compile(_NS + r"/bulk(/delete)?"), kv_bulk),
        ("POST", re.compile(_A + r"/workers/assets/upload(/[^/]+)?"), assets),
        ("POST", re.compile(_A + r"/workers/scripts/[^/]+/assets-upload-session"), manifest),
        ("PUT", re.compile(r"/d1/imports/[^/]+"), d1_import),
        ("PUT", re.compile(_A + r"/r2/buckets/[^/]+/objects/.+"), r2_object),
        ("POST", re.compile(r"/oauth/.+"), form),
        ("POST", re.compile(r"/(login|signup|logout|device|claim/.+|dashboard/.+)"), form),
    ]


class BodyLimits:
    """ASGI middleware: the body of each HTTP request is cut off at its route class's limit."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.patterns = _patterns(settings)
        self.default = RouteClass("JSON body", "max_json_body_bytes", settings.max_json_body_bytes)

    def route_class(self, method: str, path: str) -> RouteClass:
        if path.startswith(API_PREFIX + "/"):
            path = path[len(API_PREFIX) :]
        for wanted, pattern, route_class in self.patterns:
            if wanted in ("*", method) and pattern.fullmatch(path):
                return route_class
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route_class = self.route_class(scope["method"], scope["path"])
        declared = _content_length(scope)
        started = False

        def too_large() -> PayloadTooLarge:
            return PayloadTooLarge(
                f"The {route_class.name} is larger than {route_class.limit} bytes "
                f"(the server's {route_class.setting} setting)."
            )

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > route_class.limit:
                raise too_large()  # before reading a byte of it
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > route_class.limit:
                    raise too_large()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (PayloadTooLarge, ValidationError) as exc:
            # Reached only when the error escaped the app's own handlers (e.g. a body read in a
            # middleware); the app normally answers these itself.
            if started:
                raise
            await failure(exc.code, exc.message, exc.status)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
