"""The data plane as the composition root sees it: start, invalidate, stop.

It binds the Workers socket, writes the shard config and the dispatcher into a runtime directory
the shard user can read (outside the data dir), decides how shards are sandboxed, and leaves the
rest to the Supervisor.

The Supervisor runs on an event loop of its own, in a thread of its own ("mayfly-supervisor"):
probes, kills and restarts never wait behind the API's work on the caller's loop (large uploads,
tails, deploys). A thread rather than a process: the shards' sockets, pipes and pidfds stay in one
process, and the only thing the two loops share is what crosses them explicitly (invalidations one
way, incidents the other, each awaited through a concurrent future). The GIL remains shared; a
thread that wants it gets it within the switch interval (5 ms), far inside any probe's timeout.

Per-request CPU: workerd enforces none (workerd-facts §5a); the probe is the limit. From
`cpu_limit_ms` (L): the probe runs every L/6 (at most 0.5 s) and may take L − L/6, so a loop that
starts right after an answered probe is found within L, then killed (SIGKILL) and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mayfly.runtime.admin import AdminError
from mayfly.runtime.asset_workers import asset_worker_modules, find_asset_workers
from mayfly.runtime.config import (
    DISPATCHER_MODULES,
    SECRET_ENV_VAR,
    DispatcherSettings,
    render_config,
    shard_outbound_ceiling,
)
from mayfly.runtime.incidents import Incident, IncidentSink
from mayfly.runtime.sandbox import Sandbox, checked_sandbox, plan_sandbox
from mayfly.runtime.shard import RoutePush, ShardLauncher
from mayfly.runtime.shard_limits import Limits, Usage
from mayfly.runtime.supervisor import Supervisor
from mayfly.runtime.workerd import find_workerd
from mayfly.settings import Settings

log = logging.getLogger("mayfly.runtime")

CONFIG_FILE = "shard.capnp"

T = TypeVar("T")


def probe_schedule(cpu_limit_ms: int) -> tuple[float, float]:
    """(interval, timeout) of the health probe, in seconds, so that interval + timeout is the
    CPU limit."""
    limit = max(cpu_limit_ms, 100) / 1000
    interval = min(limit / 6, 0.5)
    return interval, limit - interval


class LoopThread:
    """An event loop running in a daemon thread of its own."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` there; awaited from another loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            # Transports closed by those tasks (a probe cut short on its admin socket) release
            # their sockets on a later turn of the loop: give them one before it stops.
            await asyncio.sleep(0.05)

        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(finish(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class DataPlane:
    """`command` replaces the workerd binary (tests use fake workerds); `sandbox=False` runs shards
    as the current user without bubblewrap."""

    def __init__(
        self,
        settings: Settings,
        internal_url: str,
        internal_secret: str,
        *,
        command: Sequence[str] | None = None,
        sandbox: bool = True,
        route_ttl: float = 5.0,
        stale_route: float = 600.0,
        control_plane_timeout: float = 5.0,
        probe_interval: float | None = None,
        startup_timeout: float = 15.0,
        drain_grace: float = 10.0,
        on_incident: IncidentSink | None = None,
    ):
        self.settings = settings
        self.on_incident = on_incident
        self.internal_url = internal_url
        self._secret = internal_secret
        self._command = tuple(command) if command else None
        self._sandbox = sandbox
        self._dispatcher = DispatcherSettings(
            request_timeout_ms=round(settings.request_timeout * 1000),
            route_ttl_ms=round(route_ttl * 1000),
            stale_route_ms=round(stale_route * 1000),
            control_plane_timeout_ms=round(control_plane_timeout * 1000),
            wait_until_ms=round(settings.wait_until_limit * 1000),
            subrequests=settings.subrequests,
            outbound_connections=settings.outbound_connections,
            account_outbound_connections=settings.account_outbound_connections,
            shard_outbound_connections=settings.shard_outbound_connections,
            trusted_proxies=tuple(
                ip.strip() for ip in settings.forwarded_allow_ips.split(",") if ip.strip()
            ),
        )
        interval, probe_timeout = probe_schedule(settings.cpu_limit_ms)
        self._limits = Limits(
            memory_bytes=settings.shard_memory * 1024 * 1024,
            memory_ceiling_bytes=settings.shard_memory_ceiling * 1024 * 1024,
            max_isolates=settings.shard_isolates,
            probe_timeout=probe_timeout,
            probe_interval=interval if probe_interval is None else probe_interval,
            startup_timeout=startup_timeout,
            invalidate_timeout=max(1.0, 2 * probe_timeout),
            drain_grace=drain_grace,
        )
        # The live routes as the control plane sees them (host → route answer), read on the
        # caller's loop for each shard that starts; None: shards start empty (another node).
        self.route_source: Callable[[], Awaitable[Mapping[str, Any] | None]] | None = None
        self._seq = itertools.count(1)
        self.supervisor: Supervisor | None = None
        self._supervision: LoopThread | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._dirs: list[Path] = []

    @property
    def port(self) -> int:
        """The port Workers are served on (the bound one, when settings asked for port 0)."""
        if self._listener is None:
            raise RuntimeError("the data plane is not started")
        port: int = self._listener.getsockname()[1]
        return port

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    def next_seq(self) -> int:
        """Numbers a message to the shards; take it before reading what the message pushes."""
        return next(self._seq)

    async def invalidate(
        self, hosts: list[str], routes: Mapping[str, Any] | None = None, seq: int | None = None
    ) -> None:
        """Every live shard drops these hosts' routes and takes `routes` (host → the control
        plane's route answer, read after `seq` was taken) in their place; returns when all did."""
        if self.supervisor is not None and self._supervision is not None and hosts:
            keys = [_host_key(h) for h in hosts]
            push = RoutePush(
                seq=self.next_seq() if seq is None else seq,
                routes={_host_key(h): answer for h, answer in (routes or {}).items()},
            )
            await self._supervision.run(self.supervisor.invalidate(keys, push))

    async def scheduled(self, host: str, cron: str, scheduled_time_ms: int) -> str:
        """Runs the scheduled() handler of the host's Worker on a shard; its outcome ("ok",
        "exception", "timeout", "skipped", "unavailable")."""
        if self.supervisor is None or self._supervision is None:
            return "unavailable"
        timeout = self.settings.request_timeout + 5.0
        try:
            answer = await self._supervision.run(
                self.supervisor.scheduled(host, cron, scheduled_time_ms, timeout)
            )
        except AdminError as exc:
            log.warning("cron trigger %r of %s did not run: %s", cron, host, exc)
            return "unavailable"
        return str(answer.get("outcome", "unknown"))

    async def recycle(self, slot: int, reason: str) -> None:
        """Replaces a shard without dropping a request (Supervisor.recycle)."""
        if self.supervisor is not None and self._supervision is not None:
            await self._supervision.run(self.supervisor.recycle(slot, reason))

    async def usage(self) -> Usage:
        """What the shards hold now: memory, and Workers loaded since the start."""
        if self.supervisor is None or self._supervision is None:
            return Usage(0, 0)
        return await self._supervision.run(self.supervisor.usage())

    async def stop(self) -> None:
        supervisor, self.supervisor = self.supervisor, None
        supervision, self._supervision = self._supervision, None
        if supervisor is not None and supervision is not None:
            await supervision.run(supervisor.stop())
        if supervision is not None:
            await asyncio.to_thread(supervision.close)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for directory in self._dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._dirs.clear()

    async def _start(self) -> None:
        s = self.settings
        command = self._command or (str(find_workerd()),)
        runtime_dir = self._runtime_dir()
        admin_dir = Path(tempfile.mkdtemp(prefix="mayfly-admin-"))  # 0700: the supervisor's only
        self._dirs.append(admin_dir)
        sandbox = Sandbox.none()
        if self._sandbox:
            command = (str(_reachable_copy(Path(command[0]), runtime_dir)), *command[1:])
            readable = [runtime_dir, *(Path(c) for c in command[:1])]
            sandbox = await checked_sandbox(plan_sandbox(readable), command, runtime_dir)
            self._warn_if_data_dir_readable(sandbox)
        # The shard-wide outbound ceiling follows the descriptor limit the sandbox gives shards.
        if not self._dispatcher.shard_outbound_connections:
            ceiling = shard_outbound_ceiling(sandbox.open_files_limit())
            self._dispatcher = replace(self._dispatcher, shard_outbound_connections=ceiling)
        config = runtime_dir / CONFIG_FILE
        config.write_text(render_config(_internal_address(self.internal_url), self._dispatcher))
        config.chmod(0o644)
        self._listener = _bind(s.host, s.workers_port)
        launcher = ShardLauncher(
            command=command,
            config=config,
            sandbox=sandbox,
            env={SECRET_ENV_VAR: self._secret},
            admin_dir=admin_dir,
            listener=self._listener,
        )
        self._home = asyncio.get_running_loop()
        self._supervision = LoopThread("mayfly-supervisor")
        self.supervisor = Supervisor(launcher, s.shards, self._limits, self._deliver)
        self.supervisor.snapshot = self._snapshot
        await self._supervision.run(self.supervisor.start())
        log.info(
            "Data plane: %d workerd shard(s) serving Workers on %s:%d",
            s.shards,
            s.host,
            self.port,
        )

    async def _snapshot(self) -> RoutePush | None:
        """On the supervisor's loop: every live route, read on the caller's loop."""
        source, home = self.route_source, self._home
        if source is None or home is None:
            return None
        seq = self.next_seq()

        async def read() -> Mapping[str, Any] | None:
            return await source()

        answers = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(read(), home))
        if answers is None:
            return None
        routes = {_host_key(h): answer for h, answer in answers.items()}
        return RoutePush(seq=seq, routes=routes, complete=True)

    async def _deliver(self, incident: Incident) -> None:
        """On the supervisor's loop: hands the incident to `on_incident` on the caller's loop, and
        returns when it is done (the supervisor bounds the wait; the sink is not cancelled)."""
        sink, home = self.on_incident, self._home
        if sink is None or home is None:
            return

        async def deliver() -> None:
            await sink(incident)

        done = asyncio.run_coroutine_threadsafe(deliver(), home)
        await asyncio.shield(asyncio.wrap_future(done))

    def _runtime_dir(self) -> Path:
        """World-readable (the shard user must read it) and holding no secret."""
        directory = Path(tempfile.mkdtemp(prefix="mayfly-runtime-"))
        self._dirs.append(directory)
        directory.chmod(0o755)
        modules = {
            name: resources.files("mayfly.runtime").joinpath(name).read_bytes()
            for name in DISPATCHER_MODULES
        }
        modules.update(asset_worker_modules(find_asset_workers()))
        for name, source in modules.items():
            module = directory / name
            module.write_bytes(source)
            module.chmod(0o644)
        return directory

    def _warn_if_data_dir_readable(self, sandbox: Sandbox) -> None:
        if sandbox.user is None:
            log.warning(
                "Not running as root: shards run as this user, who can read the data dir %s.",
                self.settings.data_dir,
            )
            return
        with contextlib.suppress(OSError):
            mode = self.settings.data_dir.stat().st_mode
            if mode & (stat.S_IROTH | stat.S_IXOTH):
                log.warning(
                    "The data dir %s is readable by other users, shards included; chmod 0700 it.",
                    self.settings.data_dir,
                )


def _reachable_copy(binary: Path, runtime_dir: Path) -> Path:
    """The workerd binary as the shard user can run it: itself when every directory above it lets
    others through, else a link or copy in the runtime dir (a checkout under a 0700 directory,
    such as one made by mktemp -d or under /root, would refuse the shard user with EACCES)."""
    binary = binary.resolve()
    if os.geteuid() != 0 or _others_can_execute(binary):
        return binary
    target = runtime_dir / binary.name
    try:
        os.link(binary, target)
    except OSError:
        shutil.copy2(binary, target)
    target.chmod(0o755)
    return target


def _others_can_execute(path: Path) -> bool:
    try:
        if not path.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


def _host_key(host: str) -> str:
    """How the dispatcher keys its route cache: lower case, no port, no trailing dot."""
    host = host.strip().lower()
    if not host.startswith("["):
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def _internal_address(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"internal URL must be http://host:port, not {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024, reuse_port=False)
    sock.set_inheritable(False)
    return sock
