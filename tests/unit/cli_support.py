"""Helpers for SDK and CLI tests: the in-process app behind an httpx transport, and `Mayfly`, which
runs the CLI through click's runner against it.

The SDK speaks httpx; Starlette's TestClient runs the ASGI app. A MockTransport forwards each
request to it, so the only thing replaced is the network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from mayfly.cli.main import cli
from mayfly.cli.options import ClientEnv
from mayfly.sdk import TailConnection, open_websocket

API = "http://localhost:8787"

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


class Mayfly:
    """Runs `mayfly …` in-process with its own config dir and no ambient credentials."""

    def __init__(
        self,
        transport: httpx.BaseTransport,
        home: Path,
        websocket: Callable[[str], TailConnection] = open_websocket,
    ) -> None:
        self.transport = transport
        self.home = home
        self.websocket = websocket
        self.env: dict[str, str | None] = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "MAYFLY_API_URL": API,
            "MAYFLY_API_TOKEN": None,
            "MAYFLY_ACCOUNT_ID": None,
        }

    def __call__(self, *args: str, input: str | bytes | None = None, **env: str | None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli,
            list(args),
            obj=ClientEnv(transport=self.transport, open_websocket=self.websocket),
            env={**self.env, **env},
            input=input,
        )

    def json(self, *args: str, **env: str | None) -> tuple[int, Any]:
        result = self(*args, "--json", **env)
        return result.exit_code, json.loads(result.stdout)

    def ok(self, *args: str, input: str | bytes | None = None, **env: str | None) -> Any:
        """Run with --json, assert success, return the parsed output."""
        result = self(*args, "--json", input=input, **env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return json.loads(result.stdout)

    @property
    def cache_file(self) -> Path:
        return self.home / ".config" / "mayfly" / "temporary-accounts.json"
