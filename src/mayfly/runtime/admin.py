"""A minimal HTTP/1.1 client for a shard's admin socket (a unix socket only the supervisor reaches).

One connection per call: a shard that died refuses at once, a wedged one times out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class AdminError(RuntimeError):
    def __init__(self, message: str, *, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


async def admin_call(
    socket_path: str, method: str, target: str, body: Any = None, *, timeout: float
) -> dict[str, Any]:
    """Sends one request and returns the JSON answer; AdminError on any failure or timeout."""
    try:
        async with asyncio.timeout(timeout):
            return await _call(socket_path, method, target, body)
    except TimeoutError as exc:
        raise AdminError(
            f"{method} {target}: no answer within {timeout} s", timed_out=True
        ) from exc
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        raise AdminError(f"{method} {target}: {exc}") from exc


async def _call(socket_path: str, method: str, target: str, body: Any) -> dict[str, Any]:
    payload = b"" if body is None else json.dumps(body).encode()
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        writer.write(head.encode() + payload)
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(parts[1])
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        data = await (reader.readexactly(length) if length is not None else reader.read())
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    if status != 200:
        raise ValueError(f"status {status}: {data[:200]!r}")
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ValueError("answer is not a JSON object")
    return answer
