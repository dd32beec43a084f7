"""Helpers for SDK and CLI tests: the in-process app behind an httpx transport.

The SDK speaks httpx; Starlette's TestClient runs the ASGI app. A MockTransport forwards each
request to it, so the only thing replaced is the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.testclient import TestClient

HOP_BY_HOP = {"content-length", "content-encoding", "transfer-encoding", "connection"}


@contextmanager
def app_transport(app: Any) -> Iterator[httpx.MockTransport]:
    with TestClient(app, base_url="http://localhost:8787") as client:

        def forward(request: httpx.Request) -> httpx.Response:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            answer = client.request(
                request.method, str(request.url), headers=headers, content=request.read()
            )
            return httpx.Response(
                answer.status_code,
                headers=[
                    (k, v) for k, v in answer.headers.multi_items() if k.lower() not in HOP_BY_HOP
                ],
                content=answer.content,
            )

        yield httpx.MockTransport(forward)
