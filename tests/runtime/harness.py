"""Real servers for the runtime tests: uvicorn apps and a DataPlane with real workerd shards, all in
one event loop on a background thread, driven from the test's thread.

`LivePlatform` is the real control plane (public + internal API) wired to a real data plane, as
`mayfly serve` wires them; `LiveDataPlane` puts a data plane in front of any internal API (the
dispatcher tests use the fake in tests/fakes/control_plane.py). bench/dataplane.py uses it too.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from mayfly.app import Platform, QuietSignalsServer
from mayfly.runtime.dataplane import DataPlane
from mayfly.runtime.shard import Shard
from mayfly.runtime.supervisor import Supervisor
from mayfly.runtime.workerd import WorkerdNotFound, find_workerd
from mayfly.settings import Settings
from tests.conftest import auth, missing, provision, upload_body

T = TypeVar("T")


def require_workerd() -> None:
    try:
        find_workerd()
    except WorkerdNotFound as exc:
        missing(str(exc))


class LoopThread:
    """An event loop running on its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="live-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        self.run(finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Recorder:
    """ASGI middleware that remembers every request's path (to prove who reached the app)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def bind_loopback() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as mayfly.app._bind does
    sock.set_inheritable(False)
    return sock


class LiveDataPlane:
    """A DataPlane (real workerd) in front of `internal_app`, served on a loopback port."""

    def __init__(self, settings: Settings, internal_app: ASGIApp, secret: str, **options: Any):
        self.settings = settings
        self.loop = LoopThread()
        self._servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        self.dp: DataPlane | None = None
        try:
            self.internal_port = self.loop.run(self._serve_app(internal_app))
            self.dp = DataPlane(
                settings,
                internal_url=f"http://127.0.0.1:{self.internal_port}",
                internal_secret=secret,
                **options,
            )
            self.loop.run(self.dp.start())
        except BaseException:
            self.close()
            raise

    @property
    def port(self) -> int:
        assert self.dp is not None
        return self.dp.port

    @property
    def supervisor(self) -> Supervisor:
        assert self.dp is not None and self.dp.supervisor is not None
        return self.dp.supervisor

    def shards(self) -> list[Shard]:
        return self.supervisor.live_shards()

    def invalidate(self, hosts: list[str]) -> None:
        assert self.dp is not None
        self.loop.run(self.dp.invalidate(hosts))

    def get(
        self, host: str, path: str = "/", timeout: float = 30.0, method: str = "GET"
    ) -> httpx.Response:
        """A request on a new connection, with `host` in the Host header."""
        with httpx.Client(timeout=timeout) as client:
            return client.request(
                method, f"http://127.0.0.1:{self.port}{path}", headers={"host": host}
            )

    def status(self, host: str, timeout: float = 10.0) -> int | None:
        """Status of a GET on a new connection, or None when the connection failed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)

    def close(self) -> None:
        if self.dp is not None:
            self.loop.run(self.dp.stop())
        self.loop.run(self._stop_servers())
        self.loop.close()

    async def _serve_app(self, app: ASGIApp) -> int:
        sock = bind_loopback()
        server = QuietSignalsServer(uvicorn.Config(app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port: int = sock.getsockname()[1]
        return port

    async def _stop_servers(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        await asyncio.gather(*(task for _, task in self._servers), return_exceptions=True)
        self._servers.clear()


class ShiftableClock:
    """Real time plus an offset the test moves (the control plane's clock)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def platform_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "pow_k": 8,
        "pow_g": 50,
        "workers_port": 0,
        "accounts_per_hour": 10_000,
        "challenges_per_minute": 10_000,
        # These tests make every account from 127.0.0.1, and many take a shard down on purpose: a
        # taint would cut that address to 2 accounts an hour for the rest of the module
        # (tests/integration/test_address_taints.py tests tainting).
        "address_taint_seconds": 0.0,
        "shards": 2,
    }
    values.update(overrides)
    return Settings(**values)


class LivePlatform(LiveDataPlane):
    """The real control plane (public API under uvicorn, recorded internal API) + data plane."""

    def __init__(self, settings: Settings, clock: ShiftableClock | None = None, **options: Any):
        self.clock = clock or ShiftableClock()
        self.platform = Platform.create(settings, clock=self.clock)
        self.internal = Recorder(self.platform.internal_app())
        try:
            super().__init__(settings, self.internal, self.platform.internal_secret, **options)
            assert self.dp is not None
            self.platform.set_invalidator(self.platform.push_routes_to(self.dp))
            self.public_port = self.loop.run(self._serve_app(self.platform.public_app()))
        except BaseException:
            self.platform.db.dispose()
            raise
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.public_port}/client/v4/", timeout=30
        )

    def close(self) -> None:
        self.api.close()
        super().close()
        self.platform.db.dispose()

    def provision(self) -> dict[str, Any]:
        """A new temporary account: {id, name, apiToken, expiresAt}."""
        account: dict[str, Any] = provision(self.api)["account"]  # type: ignore[arg-type]
        return account

    def host(self, account: dict[str, Any], script: str) -> str:
        return f"{script}.{account['name']}.{self.settings.domain}"

    def deploy(
        self,
        account: dict[str, Any],
        script: str,
        source: str,
        *,
        flags: list[str] | None = None,
        bindings: list[dict[str, Any]] | None = None,
        compatibility_date: str = "2025-01-01",
    ) -> str:
        """PUT the script (one ES module) and return the id of the version it made live."""
        body = upload_body(
            modules={"index.js": (source.encode(), "application/javascript+module")},
            compatibility_flags=flags or [],
            compatibility_date=compatibility_date,
            bindings=bindings or [],
        )
        response = self.api.put(
            f"accounts/{account['id']}/workers/scripts/{script}",
            headers=auth(account["apiToken"]),
            **body,
        )
        assert response.status_code == 200, response.text
        version_id: str = response.json()["result"]["deployment_id"]
        return version_id
