"""The same MCP tools over streamable HTTP (mounted at /mcp by `mayfly serve`), for remote agents.

Every request carries an API token (`Authorization: Bearer mft_…` or `mfp_…`); it is checked
against the API before the MCP transport sees the request, and each tool call runs with it
through `mayfly.sdk` against `api_url` (the server's own API). Nothing is ever provisioned here
and `path` is refused: a remote agent deploys inline `files`.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from mayfly.mcp.backend import Backend
from mayfly.mcp.server import build_server
from mayfly.sdk import MayflyClient, SDKError

INVALID_TOKEN = 10000
MAX_AGENTS = 1000  # tokens whose last deployed Worker is remembered


def bearer(headers: Mapping[str, str] | None) -> str | None:
    value = (headers or {}).get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class RemoteMCP:
    """The ASGI app for /mcp, and the session manager's lifetime (`async with running()`)."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self._agents: OrderedDict[str, Backend] = OrderedDict()
        self.server = build_server(self._backend_for)
        # Authentication is the bearer token, checked on every request, so the SDK's DNS
        # rebinding guard (Host/Origin allow-lists) is not needed and would refuse public names.
        # Stateless: each request is served on its own and nothing is kept between requests (an
        # agent's state is its Backend, by token). Stateful sessions were one pool for everyone
        # (10,000, each kept 30 minutes after its last request), so one free temporary token
        # could open them all in a few minutes and lock every other agent out of /mcp.
        self.server.streamable_http_app(
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager = self.server.session_manager

    def _backend_for(self, ctx: Context) -> Backend:
        token = bearer(ctx.headers)
        if token is None:  # the middleware let nothing through without one
            raise SDKError("No API token.", code=INVALID_TOKEN)
        backend = self._agents.get(token)
        if backend is None:
            backend = Backend(
                self.api_url, token=token, directory=Path("/nonexistent"), remote=True
            )
            self._agents[token] = backend
            while len(self._agents) > MAX_AGENTS:
                self._agents.popitem(last=False)
        self._agents.move_to_end(token)
        return backend

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    def _token_works(self, token: str) -> bool:
        with MayflyClient(self.api_url) as client:
            try:
                client.with_token(token).envelope("GET", "/accounts", params={"per_page": 1})
            except SDKError:
                return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            # Stateless, every exchange is a POST: the SDK would hold a GET (or HEAD, served as
            # GET) open for ever as a stream nothing is ever sent on, and never answer a PUT.
            await _refuse(send, 405, 10405, f"{scope['method']} is not allowed on /mcp: POST.")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = bearer(headers)
        if token is None or not await anyio.to_thread.run_sync(self._token_works, token):
            await _unauthorized(send, "missing" if token is None else "invalid")
            return
        await self.manager.asgi_app(scope, receive, send)


async def _unauthorized(send: Send, why: str) -> None:
    message = (
        "Authentication error: send `Authorization: Bearer <API token>` (a temporary account's "
        f"mft_ token or a user's mfp_ token); the token is {why}."
    )
    await _refuse(send, 401, INVALID_TOKEN, message)


async def _refuse(send: Send, status: int, code: int, message: str) -> None:
    body = json.dumps(
        {
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        }
    ).encode()
    extra = (
        [(b"www-authenticate", b'Bearer realm="mayfly"')]
        if status == 401
        else [(b"allow", b"POST")]
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                *extra,
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
