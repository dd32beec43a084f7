"""Several nodes on one PostgreSQL: who is alive, and invalidations every data-plane node acknowledges.

Each node keeps a row in `cluster_nodes` (its role and a heartbeat written every HEARTBEAT
seconds with the database's clock) and LISTENs on its cluster's channels. An invalidation is a
NOTIFY on the `inv` channel; every node that runs a data plane drops those routes on its shards and
answers with a NOTIFY on `ack`. The sender waits, at most `ack_timeout`, for an ack from every node
whose heartbeat is younger than LIVE_WINDOW; a node that stays silent is marked `must_flush`.

A node drops its whole route cache (it recycles its shards: the replacements start empty) when it
finds itself marked, and whenever its LISTEN connection was lost (it may have missed
notifications). Until then it serves what it had cached for at most the route cache's lifetime
(5 s) while it can reach the control plane. Its tables (storage/cluster_tables.py) hold transient
coordination state; the migrations create them (a single SQLite process leaves them empty).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from mayfly.storage.database import Database

log = logging.getLogger("mayfly.cluster")

HEARTBEAT = 1.0
LIVE_WINDOW = 3.0
MAX_PAYLOAD = 7900  # NOTIFY payloads are limited to 8000 bytes
FORGET_AFTER = 3600  # rows of nodes silent this long are deleted

# Hosts to drop (None: every route), from a NOTIFY or a mark.
Flush = Callable[[list[str] | None], Awaitable[None]]
Listener = Callable[[dict[str, Any]], Awaitable[None]]


def conninfo(url: str) -> dict[str, Any]:
    """psycopg connection arguments from a SQLAlchemy URL (its query, e.g. options, included)."""
    parsed = make_url(url)
    args: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    args.update({k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()})
    return {k: v for k, v in args.items() if v is not None}


def channel_for(db: Database, wait: float = 60.0) -> str:
    """The cluster's channel prefix, from the platform key's fingerprint (one database may hold
    several installations in several schemas). A data-plane node started before any API replica
    set the database up (migrated it, coordination tables included) waits for it, at most `wait`
    seconds."""
    import time

    from sqlalchemy import select

    from mayfly.services.operations.platform_key import FINGERPRINT
    from mayfly.storage.tables import platform_meta

    deadline = time.monotonic() + wait
    while True:
        try:
            with db.read() as conn:
                stored = conn.execute(
                    select(platform_meta.c.value).where(platform_meta.c.name == FINGERPRINT)
                ).scalar_one_or_none()
        except Exception as exc:  # not migrated yet, or the database refuses connections
            log.warning("waiting for the database to be set up: %s", exc)
            stored = None
        if stored is not None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the database was not set up by an API replica (mayfly serve)")
        time.sleep(0.5)
    return f"mayfly_{stored[:16]}"


def chunks(hosts: list[str], limit: int = MAX_PAYLOAD - 300) -> list[list[str]]:
    """Hosts grouped so that each group's NOTIFY payload stays under PostgreSQL's limit."""
    out: list[list[str]] = [[]]
    size = 0
    for host in hosts:
        cost = len(json.dumps(host)) + 1
        if out[-1] and size + cost > limit:
            out.append([])
            size = 0
        out[-1].append(host)
        size += cost
    return out


def node_id(role: str) -> str:
    return f"{socket.gethostname()[:60]}-{role}-{secrets.token_hex(4)}"


class Cluster:
    """This node's membership. `flush` is set on nodes that run a data plane."""

    def __init__(self, db: Database, role: str, channel: str, *, ack_timeout: float = 2.0):
        self.db = db
        self.role = role
        self.id = node_id(role)
        self.ack_timeout = ack_timeout
        self.flush: Flush | None = None
        self.listeners: dict[str, Listener] = {}
        self._channel = channel
        self._args = conninfo(db.url)
        self._send: psycopg.AsyncConnection[Any] | None = None
        self._send_lock = asyncio.Lock()
        self._pending: dict[str, tuple[set[str], asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    def channel(self, name: str) -> str:
        return f"{self._channel}_{name}"

    async def start(self) -> None:
        self._tasks.append(
            asyncio.create_task(self._listen_forever(), name="mayfly-cluster-listen")
        )
        async with asyncio.timeout(30):
            await self._listening.wait()
        await self._beat()
        self._tasks.append(asyncio.create_task(self._beat_forever(), name="mayfly-cluster-beat"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._execute("DELETE FROM cluster_tails WHERE node_id = %s", (self.id,))
            await self._execute("DELETE FROM cluster_nodes WHERE id = %s", (self.id,))
        if self._send is not None:
            with contextlib.suppress(Exception):
                await self._send.close()

    # -- sending ---------------------------------------------------------------------------------

    async def notify(self, name: str, message: dict[str, Any]) -> None:
        payload = json.dumps({**message, "from": self.id}, separators=(",", ":"))
        await self._execute("SELECT pg_notify(%s, %s)", (self.channel(name), payload))

    async def invalidate(self, hosts: list[str]) -> None:
        """Every other live data-plane node drops these routes; returns when all acknowledged, or
        after `ack_timeout` with the silent ones marked. Hosts too many for one NOTIFY go in
        several, acknowledged each. If PostgreSQL cannot be reached the change is logged, not
        raised: the nodes' LISTEN connections broke too, and they drop every route when they
        reconnect."""
        if not hosts:
            return
        try:
            live = await self.live_data_planes()
            await asyncio.gather(*(self._invalidate(chunk, live) for chunk in chunks(hosts)))
        except psycopg.Error as exc:
            log.warning("could not send an invalidation to the other nodes: %s", exc)

    async def _invalidate(self, hosts: list[str], live: set[str]) -> None:
        ack_id = secrets.token_hex(8)
        acked: set[str] = set()
        arrived = asyncio.Event()
        self._pending[ack_id] = (acked, arrived)
        try:
            await self.notify("inv", {"id": ack_id, "hosts": hosts})
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.ack_timeout
            while not live <= acked:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await arrived.wait()
            silent = live - acked
            if silent:
                log.warning(
                    "data-plane node(s) %s did not acknowledge an invalidation within %.1f s: "
                    "marked, they drop their route caches when they see it",
                    ", ".join(sorted(silent)),
                    self.ack_timeout,
                )
                await self._execute(
                    "UPDATE cluster_nodes SET must_flush = true WHERE id = ANY(%s)",
                    (sorted(silent),),
                )
        finally:
            self._pending.pop(ack_id, None)

    async def live_data_planes(self) -> set[str]:
        rows = await self._fetch(
            "SELECT id FROM cluster_nodes WHERE role IN ('all', 'dataplane') AND id <> %s "
            "AND heartbeat_at > now() - make_interval(secs => %s)",
            (self.id, LIVE_WINDOW),
        )
        return {row[0] for row in rows}

    async def live_nodes(self) -> set[str]:
        rows = await self._fetch(
            "SELECT id FROM cluster_nodes WHERE heartbeat_at > now() - make_interval(secs => %s)",
            (LIVE_WINDOW,),
        )
        return {row[0] for row in rows}

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._send is None or self._send.closed:
            self._send = await psycopg.AsyncConnection.connect(autocommit=True, **self._args)
        return self._send

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._fetch(sql, params, rows=False)

    async def _fetch(
        self, sql: str, params: tuple[Any, ...], *, rows: bool = True
    ) -> list[tuple[Any, ...]]:
        """On the sending connection; a broken one (PostgreSQL restarted) is replaced once."""
        async with self._send_lock:
            for attempt in (1, 2):
                try:
                    cursor = await (await self._connection()).execute(sql, params)
                    return list(await cursor.fetchall()) if rows else []
                except psycopg.OperationalError:
                    self._send = None
                    if attempt == 2:
                        raise
        return []

    # -- heartbeat -------------------------------------------------------------------------------

    async def _beat(self) -> None:
        rows = await self._fetch(
            "INSERT INTO cluster_nodes (id, role) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "
            "SET heartbeat_at = now() RETURNING must_flush",
            (self.id, self.role),
        )
        if rows and rows[0][0]:
            await self._flush_all("it missed an acknowledgement deadline")
            await self._execute(
                "UPDATE cluster_nodes SET must_flush = false WHERE id = %s", (self.id,)
            )

    async def _beat_forever(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._beat()
                beats += 1
                if beats % 10 == 0:  # tails of replicas that died with them
                    await self._execute(
                        "DELETE FROM cluster_tails WHERE node_id NOT IN (SELECT id FROM "
                        "cluster_nodes WHERE heartbeat_at > now() - make_interval(secs => %s))",
                        (LIVE_WINDOW,),
                    )
                if beats % 60 == 0:
                    await self._execute(
                        "DELETE FROM cluster_nodes WHERE heartbeat_at < now() - "
                        "make_interval(secs => %s)",
                        (FORGET_AFTER,),
                    )
            except Exception as exc:  # the database is away: the listener notices too
                log.warning("cluster heartbeat failed: %s", exc)

    async def _flush_all(self, why: str) -> None:
        if self.flush is not None:
            log.warning("dropping every cached route of this node: %s", why)
            await self.flush(None)

    # -- listening -------------------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(autocommit=True, **self._args)
                async with conn:
                    for name in ("inv", "ack", *self.listeners):
                        await conn.execute(f'LISTEN "{self.channel(name)}"')
                    if not first:
                        await self._flush_all("its LISTEN connection was lost")
                    first = False
                    self._listening.set()
                    async for note in conn.notifies():
                        self._dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(0.5)

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if channel == self.channel("ack"):
            pending = self._pending.get(str(message.get("id")))
            if pending is not None:
                pending[0].add(str(message.get("node")))
                pending[1].set()
            return
        if message.get("from") == self.id:
            return  # this node's own: already applied locally
        if channel == self.channel("inv"):
            self._spawn(self._apply(message))
            return
        for name, listener in self.listeners.items():
            if channel == self.channel(name):
                self._spawn(listener(message))

    async def _apply(self, message: dict[str, Any]) -> None:
        if self.role == "api":
            return  # no data plane here: nothing to drop, nobody waits for this node
        try:
            hosts = message.get("hosts")
            if self.flush is not None:  # None while the shards start: they start empty
                await self.flush(None if message.get("all") else [str(h) for h in hosts or []])
            await self.notify("ack", {"id": message.get("id"), "node": self.id})
        except Exception:
            log.exception("could not apply an invalidation")

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def invalidate_from_outside(db: Database, hosts: list[str], ack_timeout: float) -> None:
    """For a process outside the serving cluster (`mayfly admin`): the same NOTIFY, and the same
    wait for every live data-plane node's acknowledgement."""
    if not hosts:
        return
    channel = await asyncio.to_thread(channel_for, db, 0.0)
    cluster = Cluster(db, "api", channel, ack_timeout=ack_timeout)
    await cluster.start()
    try:
        await cluster.invalidate(hosts)
    finally:
        await cluster.stop()


class ClusterInvalidator:
    """The local data plane (if any) and every other node, together."""

    def __init__(self, local: Any, cluster: Cluster):
        self.local = local
        self.cluster = cluster

    async def invalidate(self, hosts: list[str]) -> None:
        jobs = [self.cluster.invalidate(hosts)]
        if self.local is not None:
            jobs.append(self.local.invalidate(hosts))
        await asyncio.gather(*jobs)
