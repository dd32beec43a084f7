"""A real platform (control plane + workerd shards) for tenants that attack it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.runtime.harness import LivePlatform, platform_settings, require_workerd


class Canary:
    """A listener on 127.0.0.1 and [::1] (or the addresses given; same port) that counts every
    connection it gets."""

    def __init__(self, addresses: tuple[str, ...] = ("127.0.0.1", "::1")) -> None:
        self.hits = 0
        self.port = 0
        self.addresses = addresses
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        first = await asyncio.start_server(self._handle, self.addresses[0], 0)
        self.port = first.sockets[0].getsockname()[1]
        self._servers = [first]
        for address in self.addresses[1:]:
            self._servers.append(await asyncio.start_server(self._handle, address, self.port))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nCANARY")
        await writer.drain()
        writer.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("attacks")))
    yield live
    live.close()


@pytest.fixture(scope="module")
def canary(live: LivePlatform) -> Iterator[Canary]:
    canary = Canary()
    live.loop.run(canary.start())
    yield canary
    live.loop.run(canary.stop())
