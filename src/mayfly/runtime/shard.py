"""One shard: one workerd process (one generation of a supervisor's slot) and its private sockets.

The supervisor owns the listening socket every shard accepts on. Each shard gets, per generation,
its own admin socket (a unix socket in a directory only the supervisor can enter) and a control
socket on which workerd reports `{"event": "listen", "socket": ...}` for each socket it serves.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayfly.runtime import procfs
from mayfly.runtime.admin import admin_call
from mayfly.runtime.config import ADMIN_SOCKET, HTTP_SOCKET
from mayfly.runtime.sandbox import Sandbox
from mayfly.runtime.workerd import ShardFds, serve_argv

log = logging.getLogger("mayfly.runtime")
# Tenants' console output ends up on workerd's stdout/stderr: never in the platform's log.
output_log = logging.getLogger("mayfly.runtime.output")

_OUTPUT_LINES = 40


class ShardStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class ShardLauncher:
    """Everything needed to start a shard process."""

    command: tuple[str, ...]
    config: Path
    sandbox: Sandbox
    env: dict[str, str]
    admin_dir: Path
    listener: socket.socket = field(repr=False)

    def argv(self, fds: ShardFds) -> list[str]:
        return self.sandbox.wrap(
            serve_argv(self.command, self.config, fds), str(self.config.parent)
        )


class Shard:
    def __init__(
        self,
        slot: int,
        generation: int,
        process: asyncio.subprocess.Process,
        admin_path: Path,
        control: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ):
        self.slot = slot
        self.generation = generation
        self.process = process
        self.admin_path = admin_path
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self.ready = asyncio.Event()
        self._listening: set[str] = set()
        self._control_writer = control[1]
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self._tree: dict[int, int] = {}  # pid → pidfd of the descendants, taken once ready
        self._exited = asyncio.ensure_future(process.wait())
        self._tasks = [
            asyncio.ensure_future(self._read_control(control[0])),
            asyncio.ensure_future(self._read_output()),
        ]

    @classmethod
    async def spawn(cls, launcher: ShardLauncher, slot: int, generation: int) -> Shard:
        admin_path = launcher.admin_dir / f"shard-{slot}-{generation}.sock"
        admin_path.unlink(missing_ok=True)
        admin = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ours, theirs = socket.socketpair()
        try:
            admin.bind(str(admin_path))
            admin.listen(64)
            fds = ShardFds(launcher.listener.fileno(), admin.fileno(), theirs.fileno())
            process = await asyncio.create_subprocess_exec(
                *launcher.argv(fds),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=fds.all(),
                env=launcher.env,
                cwd=launcher.config.parent,
                start_new_session=True,
                **launcher.sandbox.popen_kwargs(),
            )
        except BaseException:
            ours.close()
            admin_path.unlink(missing_ok=True)
            raise
        finally:
            # The child holds its copies; ours would keep a dead shard's admin socket accepting.
            admin.close()
            theirs.close()
        control = await asyncio.open_connection(sock=ours)
        return cls(slot, generation, process, admin_path, control)

    def __repr__(self) -> str:
        return f"<Shard {self.slot}.{self.generation} pid={self.pid}>"

    @property
    def name(self) -> str:
        return f"shard {self.slot} (pid {self.pid})"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def workerd_pid(self) -> int:
        """The workerd process itself: the deepest process of the tree (the root without bwrap)."""
        return list(self._tree)[-1] if self._tree else self.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def output_tail(self) -> str:
        return "\n".join(self._output)

    async def until_ready(self) -> bool:
        """Waits until the shard listens (True) or exits first (False)."""
        ready = asyncio.ensure_future(self.ready.wait())
        try:
            await asyncio.wait([ready, self._exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        return self.ready.is_set()

    async def wait_ready(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                if await self.until_ready():
                    return
        if self._exited.done():
            # Let the output reader catch workerd's last words.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[1]), 1.0)
            raise ShardStartError(
                f"workerd exited with status {self.returncode} before listening"
                + (f":\n{self.output_tail()}" if self._output else ".")
            )
        raise ShardStartError(f"workerd did not report listening within {timeout} s.")

    async def probe(self, timeout: float) -> dict[str, Any]:
        return await admin_call(str(self.admin_path), "GET", "/health", timeout=timeout)

    async def invalidate(self, hosts: list[str], timeout: float) -> None:
        await admin_call(
            str(self.admin_path), "POST", "/invalidate", {"hosts": hosts}, timeout=timeout
        )

    def rss_bytes(self) -> int:
        return procfs.rss_bytes([self.pid, *self._tree])

    def terminate(self) -> None:
        """Asks workerd to drain: it stops accepting and exits after its in-flight requests."""
        if self._tree:
            self._signal_tree(signal.SIGTERM, only_leaf=True)
        elif self.alive:
            self.process.terminate()

    def kill(self) -> None:
        if not self._tree and self.alive:
            # Not ready yet: take the tree as it is now.
            self._open_tree()
        self._signal_tree(signal.SIGKILL, only_leaf=False)
        if self.alive:
            self.process.kill()

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def close(self) -> None:
        """After the process exited: finish the readers and release the sockets."""
        await self.wait()
        _, pending = await asyncio.wait(self._tasks, timeout=2.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._control_writer.close()
        with contextlib.suppress(OSError):
            await self._control_writer.wait_closed()
        for pidfd in self._tree.values():
            os.close(pidfd)
        self._tree.clear()
        self.admin_path.unlink(missing_ok=True)

    def _open_tree(self) -> None:
        for pid in procfs.descendants(self.pid):
            if pid not in self._tree:
                with contextlib.suppress(OSError):
                    self._tree[pid] = os.pidfd_open(pid)

    def _signal_tree(self, sig: signal.Signals, *, only_leaf: bool) -> None:
        fds = list(self._tree.values())
        for pidfd in reversed(fds[-1:] if only_leaf else fds):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, sig)

    async def _read_control(self, reader: asyncio.StreamReader) -> None:
        async for line in _lines(reader):
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("event") == "listen":
                self._listening.add(str(message.get("socket")))
            if not self.ready.is_set() and {HTTP_SOCKET, ADMIN_SOCKET} <= self._listening:
                if self.alive:
                    self._open_tree()
                self.ready_at = time.monotonic()
                self.ready.set()

    async def _read_output(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        async for line in _lines(stream):
            text = line.decode(errors="replace").rstrip()
            self._output.append(text)
            output_log.debug("shard %d: %s", self.slot, text)


async def _lines(stream: asyncio.StreamReader, limit: int = 8192) -> AsyncIterator[bytes]:
    """Lines until EOF; longer lines are cut into pieces (a tenant may print anything)."""
    buffer = b""
    while chunk := await stream.read(65536):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line
        while len(buffer) > limit:
            yield buffer[:limit]
            buffer = buffer[limit:]
    if buffer:
        yield buffer
