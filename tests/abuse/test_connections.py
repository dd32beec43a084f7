"""Connections to the public API are bounded: a request head has a deadline (slowloris), and one
client address holds a bounded number of connections. Before, a connection that sent nothing or a
head one byte at a time was held for ever, and 20,000 idle connections from one client took every
file descriptor of `mayfly serve`: no one else was answered until they closed."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from mayfly.api.http_protocol import ConnectionLimits, limited_protocol
from tests.abuse.live_server import live_server


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (socket.timeout if it never does)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_slow_or_silent_connection_is_closed_at_the_head_deadline(tmp_path: Path) -> None:
    with live_server(tmp_path, "--request-head-timeout", "1") as server:
        with (
            socket.create_connection(("127.0.0.1", server.api_port), timeout=15) as slow,
            socket.create_connection(("127.0.0.1", server.api_port), timeout=15) as silent,
        ):
            slow.sendall(b"GET /client/v4/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            answer = read_until_closed(slow)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            body = json.loads(answer.partition(b"\r\n\r\n")[2])
            assert body["success"] is False and "--request-head-timeout" in str(body["errors"])
            assert read_until_closed(silent) == b""
        # A request whose head arrives in time is served as before, then kept alive.
        with socket.create_connection(("127.0.0.1", server.api_port), timeout=15) as ok:
            ok.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.recv(65536).startswith(b"HTTP/1.1 200 ")


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer, self.written, self.closed = peer, b"", False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self.peer, 40000), "sockname": ("192.0.2.1", 8787)}.get(name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


@pytest.fixture
def connect() -> Any:
    loop = asyncio.new_event_loop()
    limits = ConnectionLimits(3, 0, trusted_proxies="198.51.100.7, 10.0.0.0/8, proxy.example")
    protocol_class = limited_protocol(limits)
    config, state = Config(_app, log_level="warning"), ServerState()

    def open_from(peer: str) -> tuple[Any, FakeTransport]:
        protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
        transport = FakeTransport(peer)
        protocol.connection_made(transport)
        return protocol, transport

    yield open_from, limits
    loop.close()


def test_one_address_holds_at_most_its_connections(connect: Any) -> None:
    open_from, limits = connect
    held = [open_from("203.0.113.5") for _ in range(3)]
    assert not any(t.closed for _, t in held)
    _, refused = open_from("203.0.113.5")
    assert refused.closed and refused.written.startswith(b"HTTP/1.1 429 ")
    body = json.loads(refused.written.partition(b"\r\n\r\n")[2])
    assert body["errors"][0]["code"] == 10429
    assert b"retry-after: 1" in refused.written.lower()
    # Another address is not affected; IPv6 addresses of one /64 count together.
    assert not open_from("203.0.113.6")[1].closed
    for _ in range(3):
        assert not open_from("2001:db8:1:2::1")[1].closed
    assert open_from("2001:db8:1:2::ffff")[1].closed
    assert not open_from("2001:db8:1:3::1")[1].closed
    # A connection that ends frees its slot, whether its protocol heard of it (connection_lost)
    # or not (a connection upgraded to a WebSocket is closed under another protocol).
    protocol, transport = held[0]
    transport.close()
    protocol.connection_lost(None)
    assert not open_from("203.0.113.5")[1].closed
    held[1][1].close()
    assert not open_from("203.0.113.5")[1].closed
    assert limits.held("203.0.113.5") == 3


def test_loopback_and_trusted_proxies_are_not_counted(connect: Any) -> None:
    open_from, _ = connect
    for peer in ("127.0.0.1", "::1", "198.51.100.7", "10.1.2.3", "::ffff:127.0.0.1"):
        assert not any(open_from(peer)[1].closed for _ in range(10)), peer
