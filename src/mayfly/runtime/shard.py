"""One shard: one workerd process (one generation of a supervisor's slot) and its private sockets.

The supervisor owns the listening socket every shard accepts on. Each shard gets, per generation,
its own admin socket (a unix socket in a directory only the supervisor can enter) and a control
socket on which workerd reports `{"event": "listen", "socket": ...}` for each socket it serves.

Attribution: the dispatcher writes a line on stdout right before it hands a request to a tenant
(`<mark> + <request id> <version id>`) and when the tenant answered (`<mark> - <request id>`).
`<mark>` is a per-shard random token in the dispatcher's environment, which no tenant can read
(workerd-facts §5d), so a tenant cannot forge or hide one (its own console output goes to the same
stdout). workerd writes these lines synchronously, before the tenant's code runs: when a tenant
freezes the process, its request's start is already in the pipe, and the shard knows exactly
which requests were in flight at that moment (`in_flight`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayfly.runtime import procfs
from mayfly.runtime.admin import admin_call
from mayfly.runtime.config import ADMIN_SOCKET, HTTP_SOCKET, MARK_ENV_VAR
from mayfly.runtime.sandbox import Sandbox
from mayfly.runtime.shard_output import OutputPipe, read_lines, reap
from mayfly.runtime.workerd import ShardFds, serve_argv

# Tenants' console output ends up on workerd's stdout/stderr: never in the platform's log.
output_log = logging.getLogger("mayfly.runtime.output")

_OUTPUT_LINES = 40
# Requests remembered per shard for attribution: the in-flight ones (a dispatcher that loses track
# cannot make this grow without bound) and the last ones started.
_MAX_TRACKED = 4096
_RECENT_STARTS = 64


@dataclass(frozen=True)
class RequestStart:
    request_id: str
    version_id: str
    at: float  # time.monotonic() when the supervisor read the mark


@dataclass(frozen=True)
class RoutePush:
    """What the control plane pushes with an invalidation (routes.js: `pushed`)."""

    seq: int  # numbered before the control plane read `routes`: the shards apply the newest
    routes: dict[str, Any]  # host → its route answer (with the version's code when small)
    complete: bool = False  # every live route as of `seq`: a snapshot


@dataclass(frozen=True)
class HotSet:
    hosts: list[str]  # the most recently served first
    ages_ms: list[int]  # how long ago each was last served


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
        stdout: OutputPipe,
        mark: str = "",
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
        self._stdout = stdout
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self._mark = (mark + " ").encode() if mark else None
        # request id → its start, in the order they started (the newest last)
        self.in_flight: dict[str, RequestStart] = {}
        self.recent_starts: collections.deque[RequestStart] = collections.deque(
            maxlen=_RECENT_STARTS
        )
        self.marks_seen = False
        # Set by the supervisor: its last health answer, when the shard last answered one (and the
        # CPU it had used by then), when its memory was last within budget.
        self.last_health: dict[str, Any] | None = None
        self.responsive_at = self.started_at
        self.responsive_cpu = 0.0
        self.within_budget_at = self.started_at
        self._tree: dict[int, int] = {}  # pid → pidfd of the descendants, taken once ready
        self._exited = asyncio.ensure_future(self._until_exited())
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
        output, stdout = OutputPipe.fds()
        mark = secrets.token_hex(16)
        try:
            admin.bind(str(admin_path))
            admin.listen(64)
            fds = ShardFds(launcher.listener.fileno(), admin.fileno(), theirs.fileno())
            process = await asyncio.create_subprocess_exec(
                *launcher.argv(fds),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                pass_fds=fds.all(),
                env={**launcher.env, MARK_ENV_VAR: mark},
                cwd=launcher.config.parent,
                start_new_session=True,
                **launcher.sandbox.popen_kwargs(),
            )
        except BaseException:
            ours.close()
            os.close(output)
            admin_path.unlink(missing_ok=True)
            raise
        finally:
            # The child holds its copies; ours would keep a dead shard's admin socket accepting
            # (and the pipe open after the shard exited).
            admin.close()
            theirs.close()
            os.close(stdout)
        pipe: OutputPipe | None = None
        try:
            pipe = await OutputPipe.connect(output)
            control = await asyncio.open_connection(sock=ours)
        except BaseException:
            # Cancelled (the supervisor stopping) before anyone holds this shard: end it here, or
            # its process would outlive the supervisor (and asyncio would warn of it running).
            ours.close()
            admin_path.unlink(missing_ok=True)
            await asyncio.shield(reap(process, pipe))
            raise
        return cls(slot, generation, process, admin_path, control, pipe, mark)

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
            # Let the output reader catch workerd's last words (not wait_for: Python 3.11's
            # returns when cancelled in the turn the reader ends, and a cancelled start went on).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._tasks[1])
            raise ShardStartError(
                f"workerd exited with status {self.returncode} before listening"
                + (f":\n{self.output_tail()}" if self._output else ".")
            )
        raise ShardStartError(f"workerd did not report listening within {timeout} s.")

    async def probe(self, timeout: float) -> dict[str, Any]:
        return await admin_call(str(self.admin_path), "GET", "/health", timeout=timeout)

    async def invalidate(
        self, hosts: list[str], timeout: float, push: RoutePush | None = None
    ) -> None:
        """Drops these hosts' routes; with `push`, takes the routes (and code) it carries."""
        body: dict[str, Any] = {"hosts": hosts}
        if push is not None:
            body.update(seq=push.seq, routes=push.routes, complete=push.complete)
        await admin_call(str(self.admin_path), "POST", "/invalidate", body, timeout=timeout)

    async def scheduled(
        self, host: str, cron: str, scheduled_time_ms: int, timeout: float
    ) -> dict[str, Any]:
        """Runs the scheduled() handler of the Worker this host routes to; its outcome."""
        body = {"host": host, "cron": cron, "scheduledTime": scheduled_time_ms}
        return await admin_call(str(self.admin_path), "POST", "/scheduled", body, timeout=timeout)

    async def hot_set(self, window: float, limit: int, timeout: float) -> HotSet:
        """The hosts this shard served within `window` seconds, the most recent first."""
        answer = await admin_call(
            str(self.admin_path), "GET", f"/hot?seconds={window:g}&limit={limit}", timeout=timeout
        )
        hosts, ages = answer.get("hosts"), answer.get("ages_ms")
        if not isinstance(hosts, list) or not isinstance(ages, list) or len(hosts) != len(ages):
            return HotSet([], [])
        return HotSet([str(h) for h in hosts], [int(a) for a in ages])

    async def preload(self, hot: HotSet, timeout: float) -> dict[str, Any]:
        """Loads the Workers these hosts route to (routes, code and isolates) before any request."""
        body = {"hosts": hot.hosts, "ages_ms": hot.ages_ms}
        return await admin_call(str(self.admin_path), "POST", "/preload", body, timeout=timeout)

    def rss_bytes(self) -> int:
        return procfs.rss_bytes([self.pid, *self._tree])

    def cpu_seconds(self) -> float:
        return procfs.cpu_seconds([self.pid, *self._tree])

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
        try:
            await self.wait()
            _, pending = await asyncio.wait(self._tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._control_writer.close()
            with contextlib.suppress(OSError):
                await self._control_writer.wait_closed()
        finally:
            # Also when the supervisor's loop cancels this on its way down: a control socket left
            # open would outlive the loop (an unclosed-transport warning, a leaked descriptor).
            self._control_writer.close()
            self._stdout.close()
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
        async for line in read_lines(reader):
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("event") == "listen":
                self._listening.add(str(message.get("socket")))
            if not self.ready.is_set() and {HTTP_SOCKET, ADMIN_SOCKET} <= self._listening:
                if self.alive:
                    self._open_tree()
                self.ready_at = self.responsive_at = time.monotonic()
                self.responsive_cpu = self.cpu_seconds()
                self.ready.set()

    async def _until_exited(self) -> int:
        """The status once the process exited and its output pipe closed (every descendant that
        held it is gone too), as asyncio's wait() has it for a process whose output it reads."""
        status = await self.process.wait()
        await self._stdout.closed
        return status

    async def _read_output(self) -> None:
        async for line in read_lines(self._stdout.reader, pause=self._stdout.transport):
            if self._mark is not None and line.startswith(self._mark):
                self._read_mark(line[len(self._mark) :])
                continue
            text = line.decode(errors="replace").rstrip()
            self._output.append(text)
            output_log.debug("shard %d: %s", self.slot, text)

    def _read_mark(self, mark: bytes) -> None:
        self.marks_seen = True
        parts = mark.decode(errors="replace").split()
        if len(parts) == 3 and parts[0] == "+":
            start = RequestStart(parts[1], parts[2], time.monotonic())
            if len(self.in_flight) >= _MAX_TRACKED:
                self.in_flight.pop(next(iter(self.in_flight)))
            self.in_flight[start.request_id] = start
            self.recent_starts.append(start)
        elif len(parts) == 2 and parts[0] == "-":
            self.in_flight.pop(parts[1], None)
