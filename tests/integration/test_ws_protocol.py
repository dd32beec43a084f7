"""WebSocket frames a client did not mask (wrangler tail's first message) reach the app."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from mayfly.api.ws_protocol import MaskingFrames, TolerantWebSocketProtocol
from mayfly.app import QuietSignalsServer, _uvicorn

HANDSHAKE = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"


def frame(payload: bytes, *, mask: bytes | None, opcode: int = 0x1) -> bytes:
    length = len(payload)
    if length < 126:
        size = bytes([length])
    elif length < 1 << 16:
        size = bytes([126]) + length.to_bytes(2, "big")
    else:
        size = bytes([127]) + length.to_bytes(8, "big")
    head = bytes([0x80 | opcode]) + size
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([head[0], head[1] | 0x80]) + head[2:] + mask + masked


@pytest.mark.parametrize("length", [5, 200, 70_000])
def test_unmasked_frames_get_a_zero_mask_and_masked_ones_pass(length: int) -> None:
    payload = os.urandom(length)
    stream = (
        HANDSHAKE
        + frame(payload, mask=None)
        + frame(b"already", mask=b"abcd")
        + frame(b"", mask=None, opcode=0x9)
    )
    expected = (
        HANDSHAKE
        + frame(payload, mask=b"\0\0\0\0")
        + frame(b"already", mask=b"abcd")
        + frame(b"", mask=b"\0\0\0\0", opcode=0x9)
    )
    assert MaskingFrames().feed(stream) == expected
    # The same, one byte at a time: headers and the handshake's end may be split anywhere.
    bytewise = MaskingFrames()
    assert b"".join(bytewise.feed(stream[i : i + 1]) for i in range(len(stream))) == expected


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text("echo " + await websocket.receive_text())


@pytest.fixture
def echo_port() -> Iterator[int]:
    app = Starlette(routes=[WebSocketRoute("/echo", echo)])
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws=TolerantWebSocketProtocol)
    server = QuietSignalsServer(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_the_server_answers_an_unmasked_message(echo_port: int) -> None:
    with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as conn:
        key = base64.b64encode(os.urandom(16)).decode()
        conn.sendall(
            (
                "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += conn.recv(4096)
        assert response.startswith(b"HTTP/1.1 101")
        conn.sendall(frame(b'{"debug":false}', mask=None))
        answer = conn.recv(4096)
        assert answer == frame(b'echo {"debug":false}', mask=None)  # not a 1002 close


def test_mayfly_serves_with_the_tolerant_protocol() -> None:
    assert _uvicorn(Starlette()).config.ws is TolerantWebSocketProtocol
