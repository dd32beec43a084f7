"""HEAD is GET without the body (RFC 9110 §9.3.2), decided once, before any handler runs.

Starlette adds HEAD to every route that allows GET and hands the handler the request as it came,
so a handler that serves several methods and takes "not GET, not PUT" for DELETE deleted on HEAD.
Here a HEAD request reaches the app as GET and its answer is sent without the body (its headers,
Content-Length included, are those of the GET), so no handler ever sees HEAD."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
