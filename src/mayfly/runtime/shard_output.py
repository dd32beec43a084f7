"""A shard's output pipe: made and widened here, read in batches, reaped with its process."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator

log = logging.getLogger("mayfly.runtime")

# A heavily logging tenant must not block workerd on a full stdout pipe (its event loop would
# stall in write() and the shard would look frozen): 1 MiB rather than Linux's 64 KiB. The pipe is
# made here (`OutputPipe`), not by asyncio's subprocess, so that it is widened and paused through
# a transport of our own.
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Shard output (request marks, tenants' console) is read at most every _BATCH seconds, _READ_BYTES at
# a time (see `read_lines`): the marks of a busy shard cost this process one wakeup per batch, not one
# per request. Attribution reads the marks still in the pipe before it names anyone (`Shard.close`).
_BATCH = 0.02
_READ_BYTES = 65536
# How long a shard's process, killed before anyone held it, may take to exit and close its output
# (its descendants die with it: sandbox.py).
_REAP_TIMEOUT = 10.0


class OutputPipe(asyncio.Protocol):
    """A shard's stdout and stderr: a pipe of PIPE_BYTES, read into `reader` through `transport`
    (which `read_lines` pauses between batches); `closed` once every writer has closed it."""

    def __init__(self) -> None:
        self.reader = asyncio.StreamReader()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.ReadTransport | None = None

    @staticmethod
    def fds() -> tuple[int, int]:
        """A new pipe, widened: (the read end, the write end to give the process as its stdout).
        Neither is inherited by a child unless given to it."""
        read_end, write_end = os.pipe()
        with contextlib.suppress(OSError):  # a host whose pipe-max-size is lower: Linux's 64 KiB
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_BYTES)
        return read_end, write_end

    @classmethod
    async def connect(cls, read_end: int) -> OutputPipe:
        """Reads from `read_end` (closed with the transport, or here if it cannot be read)."""
        pipe = open(read_end, "rb", buffering=0)  # noqa: SIM115 (the transport closes it)
        try:
            _, protocol = await asyncio.get_running_loop().connect_read_pipe(cls, pipe)
        except BaseException:
            pipe.close()
            raise
        return protocol

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self.transport = transport
        self.reader.set_transport(transport)  # the reader pauses it when it holds too much

    def data_received(self, data: bytes) -> None:
        self.reader.feed_data(data)

    def eof_received(self) -> None:
        self.reader.feed_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.reader.feed_eof()
        else:
            self.reader.set_exception(exc)
        if not self.closed.done():
            self.closed.set_result(None)


async def reap(process: asyncio.subprocess.Process, output: OutputPipe | None) -> None:
    """Kills a process nobody else holds and waits until it has exited and its output pipe is
    closed, then closes the pipe's transport (no ResourceWarning, no child left unreaped)."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    try:
        async with asyncio.timeout(_REAP_TIMEOUT):
            await process.wait()
            if output is not None:
                while await output.reader.read(_READ_BYTES):
                    pass  # what it wrote is nobody's business now: read to the end
    except TimeoutError:
        log.warning("pid %d: its output pipe is still open after it was killed", process.pid)
    finally:
        if output is not None:
            output.close()


async def read_lines(
    stream: asyncio.StreamReader,
    limit: int = 8192,
    *,
    pause: asyncio.ReadTransport | None = None,
) -> AsyncIterator[bytes]:
    """Lines until EOF; longer lines are cut into pieces (a tenant may print anything).

    With `pause` (the stream's transport), output is read in batches: once a read has taken all
    there was, the pipe is left to fill for `_BATCH` seconds before the next one. Two request marks
    per request would otherwise wake this loop about once per request; a tenant that logs faster
    than one read per batch takes is read without pauses (its output never waits in a full pipe).
    """
    buffer = b""
    while chunk := await stream.read(_READ_BYTES):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line
        while len(buffer) > limit:
            yield buffer[:limit]
            buffer = buffer[limit:]
        if pause is not None and len(chunk) < _READ_BYTES:
            pause.pause_reading()
            try:
                await asyncio.sleep(_BATCH)
            finally:
                pause.resume_reading()
    if buffer:
        yield buffer
