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

from mayfly.api.internal import build_internal_app
from mayfly.api.routes import build_public_app
from mayfly.services.clock import Clock, SystemClock
from mayfly.services.container import Services
from mayfly.services.context import Invalidator, ServiceContext
from mayfly.services.crypto import Crypto, load_or_create_key
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

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> Platform:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.data_dir.chmod(0o700)
        db = Database(settings.database_url)
        db.migrate()
        # With PostgreSQL, blobs live in the database so that several control planes share them.
        blob_root = settings.data_dir / "blobs" if db.is_sqlite else None
        ctx = ServiceContext(
            settings=settings,
            db=db,
            blobs=BlobStore(blob_root),
            crypto=Crypto(load_or_create_key(settings.secret_key, settings.data_dir)),
            clock=clock or SystemClock(),
        )
        return cls(settings=settings, db=db, services=Services.build(ctx))

    def set_invalidator(self, invalidator: Invalidator) -> None:
        self.services.ctx.invalidator = invalidator

    def public_app(self) -> Any:
        from mayfly.pages import page_routes

        return build_public_app(self.services, page_routes())

    def internal_app(self) -> Any:
        return build_internal_app(self.services, self.internal_secret)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        """Run the public API, the internal API, the reaper and (if enabled) the data plane."""
        s = self.settings
        internal_sock = _bind("127.0.0.1", 0)
        internal_port = internal_sock.getsockname()[1]
        public = QuietSignalsServer(
            uvicorn.Config(
                self.public_app(),
                host=s.host,
                port=s.api_port,
                log_level="warning",
                lifespan="off",
                ws="websockets-sansio",
                proxy_headers=False,
            )
        )
        internal = QuietSignalsServer(
            uvicorn.Config(self.internal_app(), log_level="warning", lifespan="off")
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        data_plane = None
        tasks: list[asyncio.Task[Any]] = []
        try:
            tasks.append(asyncio.create_task(internal.serve(sockets=[internal_sock])))
            if s.runtime:
                from mayfly.runtime.dataplane import DataPlane

                data_plane = DataPlane(
                    settings=s,
                    internal_url=f"http://127.0.0.1:{internal_port}",
                    internal_secret=self.internal_secret,
                )
                await data_plane.start()
                self.set_invalidator(data_plane)
            tasks.append(asyncio.create_task(public.serve()))
            tasks.append(asyncio.create_task(self.services.reaper.run_forever()))
            while not public.started:
                if tasks[-2].done():
                    tasks[-2].result()
                await asyncio.sleep(0.02)
            log.info("Mayfly API listening on %s (bound %s:%s)", s.public_url, s.host, s.api_port)
            if data_plane is not None:
                log.info("Workers served at http://<script>.<account>.%s", s.workers_url_suffix)
            if ready is not None:
                ready.set()
            done_waiter = asyncio.create_task(stop.wait())
            finished, _ = await asyncio.wait(
                [done_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                if task is not done_waiter and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            log.info("Mayfly stopping")
            public.should_exit = True
            internal.should_exit = True
            if data_plane is not None:
                await data_plane.stop()
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.db.dispose()
            log.info("Mayfly stopped")


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock
