"""A shard's output pipe (shard_output.OutputPipe): made and widened here, read through our own transport,
closed only once every process that could write to it is gone."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
from collections.abc import AsyncIterator

from mayfly.runtime import shard_output
from mayfly.runtime.shard_output import OutputPipe, read_lines

_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)

# The child prints, starts a grandchild that holds the same stdout, and exits; the grandchild
# prints its last words once the test closes the gate (its stdin).
CHILD = """
import subprocess, sys
print("first", flush=True)
subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(); print('last words')"])
"""
WRITES_THEN_WAITS = (
    "import sys, time; sys.stdout.write('x' * 300000); sys.stdout.flush(); time.sleep(60)"
)


def test_the_pipe_is_widened_and_not_inherited() -> None:
    read_end, write_end = OutputPipe.fds()
    try:
        assert fcntl.fcntl(read_end, _F_GETPIPE_SZ) == shard_output.PIPE_BYTES
        assert not os.get_inheritable(read_end)
        assert not os.get_inheritable(write_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_output_is_read_to_the_end_of_every_writer_in_batches() -> None:
    async def scenario() -> tuple[list[bytes], bool]:
        read_end, write_end = OutputPipe.fds()
        gate_read, gate_write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, stdin=gate_read, stdout=write_end
            )
        finally:
            os.close(write_end)
            os.close(gate_read)
        pipe = await OutputPipe.connect(read_end)
        assert pipe.transport is not None
        reading = asyncio.ensure_future(
            _collect(read_lines(pipe.reader, pause=pipe.transport))  # paused between batches
        )
        await process.wait()
        # The child is gone, its grandchild still holds the pipe: not closed.
        open_after_exit = not pipe.closed.done()
        os.close(gate_write)
        lines = await reading
        await pipe.closed
        assert pipe.transport.is_closing()
        return lines, open_after_exit

    lines, open_after_exit = asyncio.run(scenario())
    assert lines == [b"first", b"last words"]
    assert open_after_exit


def test_reap_kills_reads_to_the_end_and_closes_the_transport() -> None:
    async def scenario() -> None:
        read_end, write_end = OutputPipe.fds()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITES_THEN_WAITS,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
            )
        finally:
            os.close(write_end)
        pipe = await OutputPipe.connect(read_end)
        assert await pipe.reader.readexactly(1) == b"x"  # the rest is written or on its way
        await shard_output.reap(process, pipe)
        assert process.returncode == -9
        assert pipe.reader.at_eof()
        assert pipe.transport is not None and pipe.transport.is_closing()
        await pipe.closed

    asyncio.run(scenario())


async def _collect(lines: AsyncIterator[bytes]) -> list[bytes]:
    return [line async for line in lines]
