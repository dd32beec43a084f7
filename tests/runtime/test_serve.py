"""`Platform.serve` (what `mayfly serve` runs) starts the data plane, wires its invalidations and
stops it without leaving a shard behind."""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

import httpx
import pytest

from mayfly.app import Platform
from mayfly.runtime.dataplane import DataPlane
from mayfly.services.workers.route_push import RoutePusher
from tests.conftest import auth, provision, upload_body
from tests.runtime.harness import LoopThread, platform_settings, require_workerd
from tests.runtime.test_supervisor import gone

pytestmark = pytest.mark.runtime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_platform_serve_runs_the_data_plane(tmp_path: Path) -> None:
    require_workerd()
    settings = platform_settings(tmp_path, api_port=free_port(), workers_port=free_port())
    platform = Platform.create(settings)
    loop = LoopThread()
    ready = asyncio.Event()

    async def start() -> asyncio.Task[None]:
        return asyncio.create_task(platform.serve(ready))

    async def stop(task: asyncio.Task[None]) -> None:
        task.cancel()  # what SIGTERM does, through serve's stop event
        await asyncio.gather(task, return_exceptions=True)

    serving = loop.run(start())
    try:
        loop.run(asyncio.wait_for(ready.wait(), 60))
        pusher = platform.services.ctx.invalidator  # pushes routes to the local data plane
        assert isinstance(pusher, RoutePusher)
        data_plane = pusher.local
        assert isinstance(data_plane, DataPlane)
        assert data_plane.supervisor is not None
        pids = [s.pid for s in data_plane.supervisor.live_shards()]
        assert len(pids) == settings.shards
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}/client/v4/") as api:
            account = provision(api)["account"]  # type: ignore[arg-type]
            host = f"hi.{account['name']}.localhost"
            for text in (b"first", b"second"):
                source = b"export default { fetch() { return new Response('%s'); } };" % text
                response = api.put(
                    f"accounts/{account['id']}/workers/scripts/hi",
                    headers=auth(account["apiToken"]),
                    **upload_body(modules={"index.js": (source, "application/javascript+module")}),
                )
                assert response.status_code == 200, response.text
                served = httpx.get(
                    f"http://127.0.0.1:{settings.workers_port}/", headers={"host": host}
                )
                assert served.text == text.decode()
    finally:
        loop.run(stop(serving))
        loop.close()
        del serving  # its traceback holds serve's frame, and so the leaked sockets
        gc.collect()  # let them warn inside this test
    assert all(gone(pid) for pid in pids)
