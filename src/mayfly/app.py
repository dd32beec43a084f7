"""Composition root: settings → storage → runtime → services → ASGI apps. Nothing imports it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from mayfly.api.http_protocol import ConnectionLimits, EnvelopeHttpProtocol, limited_protocol
from mayfly.api.internal import build_internal_app
from mayfly.api.metrics import build_metrics_app
from mayfly.api.routes import build_public_app
from mayfly.api.ws_protocol import TolerantWebSocketProtocol
from mayfly.runtime.incidents import Incident
from mayfly.services.container import Services
from mayfly.services.context import Invalidator, ServiceContext
from mayfly.services.core.clock import Clock, SystemClock
from mayfly.services.core.crypto import Crypto, load_or_create_key
from mayfly.services.operations.housekeeping import Housekeeper
from mayfly.services.operations.platform_key import check_fingerprint, require_shared_key
from mayfly.services.workers.scheduler import Scheduler
from mayfly.settings import Settings
from mayfly.storage.blobs import BlobStore
from mayfly.storage.database import Database

log = logging.getLogger("mayfly")


class QuietSignalsServer(uvicorn.Server):
    """uvicorn without its own signal handling: the Platform stops every server together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Platform:
    settings: Settings
    db: Database
    services: Services
    internal_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    cluster: Any = None  # services.operations.cluster.Cluster, with PostgreSQL
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    remote_mcp: Any = None  # mayfly.mcp.http.RemoteMCP, made with the public app
    route_pusher: Any = None  # services.workers.route_push.RoutePusher, with a local data plane

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> Platform:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.data_dir.chmod(0o700)
        db = Database(settings.database_url)
        try:
            if settings.serves_api:
                require_shared_key(db, settings.secret_key)
                db.migrate()
                key = load_or_create_key(settings.secret_key, settings.data_dir)
                check_fingerprint(db, key)
            else:  # a data-plane node decrypts nothing: the control plane's internal API does
                key = secrets.token_bytes(32)
        except BaseException:
            db.dispose()
            raise
        # With PostgreSQL, blobs live in the database so that several control planes share them.
        blob_root = settings.data_dir / "blobs" if db.is_sqlite else None
        ctx = ServiceContext(
            settings=settings,
            db=db,
            blobs=BlobStore(blob_root),
            crypto=Crypto(key),
            clock=clock or SystemClock(),
        )
        services = Services.build(ctx)
        if not db.is_sqlite:  # replicas share per-address limits through the database
            _share_limiters(services)
        ctx.metrics.watch_pools({"write": db.engine, "read": db.read_engine})
        ctx.metrics.watch_reaper_lag(services.reaper.lag_seconds)
        ctx.metrics.watch_pow(
            lambda: float(services.provisioning.difficulty().work),
            lambda: services.provisioning.difficulty().pressure,
        )
        platform = cls(settings=settings, db=db, services=services)
        if settings.cluster_secret:  # data-plane nodes on other machines present it
            platform.internal_secret = settings.cluster_secret
        return platform

    def set_invalidator(self, invalidator: Invalidator) -> None:
        self.services.ctx.invalidator = invalidator

    def public_app(self) -> Any:
        from starlette.routing import Route

        from mayfly.mcp.http import RemoteMCP
        from mayfly.pages import page_routes

        # MCP for remote agents: the tools call this server's own API with the caller's token.
        self.remote_mcp = RemoteMCP(_loopback_api_url(self.settings))
        return build_public_app(self.services, [*page_routes(), Route("/mcp", self.remote_mcp)])

    def internal_app(self) -> Any:
        return build_internal_app(self.services, self.internal_secret)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        """Run what the node's role asks: the public API, the internal API, the reaper (API roles),
        the data plane (all, dataplane) and, with PostgreSQL, this node's cluster membership.

        Returns on SIGINT/SIGTERM, or raises if a part fails; everything is stopped either way:
        the public API first, then the data plane (its draining requests still reach the
        internal API), then the internal API.
        """
        s = self.settings
        stop = _stop_on_signals()
        internal_sock = _bind(*_internal_address(s)) if s.serves_api else None
        internal = _uvicorn(self.internal_app())
        public = None
        data_plane: Any = None
        servers: list[asyncio.Task[None]] = []  # the internal API's, then the public API's
        tasks: list[asyncio.Task[None]] = []
        try:
            if internal_sock is not None:
                servers.append(asyncio.create_task(internal.serve(sockets=[internal_sock])))
            if not self.db.is_sqlite:
                await self._join_cluster()
            if s.runs_data_plane:
                internal_url = (
                    f"http://127.0.0.1:{internal_sock.getsockname()[1]}"
                    if internal_sock is not None
                    else s.control_plane_url
                )
                data_plane = await self._start_data_plane(internal_url)
            if s.serves_api:
                public = _uvicorn(
                    self.public_app(),
                    host=s.host,
                    port=s.api_port,
                    forwarded_allow_ips=s.forwarded_allow_ips,
                    limits=ConnectionLimits(
                        s.connections_per_address, s.request_head_timeout, s.forwarded_allow_ips
                    ),
                )
                servers.append(asyncio.create_task(public.serve()))
                tasks.append(asyncio.create_task(self.services.reaper.run_forever()))
                tasks.append(asyncio.create_task(Housekeeper(self.services).run_forever()))
                tasks.append(asyncio.create_task(self._run_remote_mcp()))
            if data_plane is not None:  # cron triggers run where a data plane can run them
                scheduler = Scheduler(self.services.schedules, data_plane)
                tasks.append(asyncio.create_task(scheduler.run_forever()))
            if self.route_pusher is not None and self.db.is_sqlite:  # `mayfly admin` tells nobody
                tasks.append(asyncio.create_task(self.route_pusher.reconcile_forever()))
            if s.metrics_port:
                metrics = _uvicorn(
                    build_metrics_app(self.services.ctx.metrics), host=s.host, port=s.metrics_port
                )
                tasks.append(asyncio.create_task(metrics.serve()))
                await _until_started(metrics, tasks[-1])
                log.info("Metrics at http://%s:%s/metrics", s.host, s.metrics_port)
            if public is not None:
                await _until_started(public, servers[-1])
                log.info(
                    "Mayfly API listening on %s (bound %s:%s)", s.public_url, s.host, s.api_port
                )
            if data_plane is not None:
                log.info("Workers served at %s", s.worker_url("<script>", "<account>"))
            if ready is not None:
                ready.set()
            await _until_stopped(stop, [*servers, *tasks])
        finally:
            log.info("Mayfly stopping")
            if public is not None:
                public.should_exit = True
                await _settle(servers[1:])
            if data_plane is not None:
                await data_plane.stop()
            if self.cluster is not None:
                await self.cluster.stop()
            internal.should_exit = True
            await _settle(servers[:1])
            for task in [*servers, *tasks]:
                task.cancel()
            await asyncio.gather(*servers, *tasks, return_exceptions=True)
            if internal_sock is not None:
                internal_sock.close()
            self.services.users.close()
            self.db.dispose()
            log.info("Mayfly stopped")

    async def _join_cluster(self) -> None:
        """With PostgreSQL: heartbeat, LISTEN, and invalidations that reach every node."""
        from mayfly.services.operations.cluster import Cluster, ClusterInvalidator, channel_for

        channel = await asyncio.to_thread(channel_for, self.db)
        # Only a node that runs shards is waited for (an "all" node with --runtime false is not).
        role = self.settings.role if self.settings.runs_data_plane else "api"
        self.cluster = Cluster(self.db, role, channel, ack_timeout=self.settings.ack_timeout)
        if self.settings.serves_api:  # tails opened here get events posted to other replicas
            from mayfly.services.operations.cluster_tails import ClusterTails

            ClusterTails(self.cluster, self.services.tails.hub).install()
        await self.cluster.start()
        self.set_invalidator(ClusterInvalidator(None, self.cluster))

    async def _run_remote_mcp(self) -> None:
        """The /mcp sessions live in a task group that lasts as long as the server."""
        if self.remote_mcp is not None:
            async with self.remote_mcp.running():
                await asyncio.Event().wait()

    async def _start_data_plane(self, internal_url: str) -> Any:
        from mayfly.runtime.dataplane import DataPlane
        from mayfly.services.operations.cluster import ClusterInvalidator

        data_plane = DataPlane(
            settings=self.settings,
            internal_url=internal_url,
            internal_secret=self.internal_secret,
            on_incident=self.handle_incident,
        )
        # Before the shards start: they get the live routes (RoutePusher.snapshot).
        local = self.push_routes_to(data_plane) if self.settings.serves_api else data_plane
        await data_plane.start()
        if data_plane.supervisor is not None:
            data_plane.supervisor.on_event = self.services.ctx.metrics.shard_event
        if self.cluster is None:
            self.set_invalidator(local)
            return data_plane

        async def flush(hosts: list[str] | None) -> None:
            if hosts is not None:
                await data_plane.invalidate(hosts)
                return
            # Every route: recycled shards start with empty caches (and fresh hot sets).
            for slot in range(self.settings.shards):
                await data_plane.recycle(slot, "cluster flush")

        self.cluster.flush = flush
        self.set_invalidator(ClusterInvalidator(local, self.cluster))
        return data_plane

    def push_routes_to(self, data_plane: Any) -> Invalidator:
        """The invalidator that also pushes the new routes (and small Workers' code) to this node's
        shards, so a Worker's first request needs no round trip (services/workers/route_push.py)."""
        from mayfly.services.workers.route_push import RoutePusher

        pusher = RoutePusher(self.services.routing, data_plane)
        self.route_pusher = pusher
        return pusher

    async def handle_incident(self, incident: Incident) -> None:
        """The data plane killed a shard: quarantine whom the rule finds guilty, then make every
        shard drop those Workers' cached routes. Never raises (runtime/incidents.py)."""
        try:
            outcome = await self.services.quarantine.report(
                kind=incident.kind,
                shard=incident.shard,
                suspects=incident.suspects,
                certain=incident.certain,
                detail=incident.detail,
            )
        except Exception:
            log.exception("could not record the incident on %s", incident.shard)
            return
        self.services.ctx.metrics.incidents.labels(incident.kind).inc()
        self.services.ctx.metrics.quarantines.inc(len(outcome.started))
        self.services.ctx.metrics.address_taints.inc(len(outcome.taints))
        self.services.ctx.metrics.account_quarantines.inc(len(outcome.accounts))
        if outcome.hosts:
            # Not awaited: the data plane may be waiting on this callback to replace the shard,
            # and an invalidation waits on every live shard. A shard that starts meanwhile asks
            # the control plane, which already answers "quarantined".
            task = asyncio.create_task(self._invalidate(outcome.hosts))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _invalidate(self, hosts: list[str]) -> None:
        try:
            await self.services.ctx.invalidator.invalidate(hosts)
        except Exception:
            log.exception("could not invalidate the routes of quarantined Workers %s", hosts)


def _share_limiters(services: Services) -> None:
    from mayfly.services.core.shared_limits import SharedHits

    for name, limiter in Housekeeper(services).named_limiters.items():
        limiter.share(SharedHits(services.ctx.db, name))


def _uvicorn(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    forwarded_allow_ips: str = "",
    limits: ConnectionLimits | None = None,
) -> QuietSignalsServer:
    # Only a proxy listed in forwarded_allow_ips may say who the client is (X-Forwarded-For):
    # every per-address limit reads the client address uvicorn puts in the scope.
    trusted = [ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()]
    return QuietSignalsServer(
        uvicorn.Config(
            app,
            # unparsable requests get a JSON error too; the public API's connections are limited
            http=limited_protocol(limits) if limits is not None else EnvelopeHttpProtocol,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws=TolerantWebSocketProtocol,  # wrangler tail sends an unmasked frame
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
        )
    )


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _until_started(server: uvicorn.Server, task: asyncio.Task[Any]) -> None:
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start (e.g. the port is taken)
            raise RuntimeError("the API server stopped before it started")
        await asyncio.sleep(0.02)


async def _until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task[Any]]) -> None:
    waiter = asyncio.create_task(stop.wait())
    try:
        finished, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    for task in finished:
        if task is not waiter and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def _settle(tasks: list[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Let servers told to exit close their connections and sockets."""
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


def _internal_address(settings: Settings) -> tuple[str, int]:
    """Where the internal API listens: --internal-listen, or a random loopback port."""
    if not settings.internal_listen:
        return "127.0.0.1", 0
    host, _, port = settings.internal_listen.rpartition(":")
    return host.strip("[]"), int(port)


def _loopback_api_url(settings: Settings) -> str:
    """This server's own API as seen from this machine (public_url may be a proxy's)."""
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.api_port}"


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. asyncio sets it only on sockets whose proto is TCP, and
    # this one's is 0: without it, each answer's body waits for the client's delayed ACK (~40 ms
    # per internal API call: KV operations, asset bytes, code loads).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock
