"""Routes (and small Workers' code) pushed to this node's shards with every invalidation.

A Worker's first request on a shard then needs no round trip to the control plane: the shard was
told its route when it was deployed (or when the shard started: `snapshot`), and its code came with
it. The guarantee stays the invalidation's: the API answers only once every shard took the message,
and the message now carries the new route instead of only dropping the old one
(docs/dataplane.md, "The cold path").

Order: each message is numbered by the data plane *before* the route it carries is read, and a shard
ignores a message older than the last one it applied for that host. A later number was read later,
so it saw every change an earlier one saw (each change is committed before its invalidation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from mayfly.services.workers.routing import RoutingService

log = logging.getLogger("mayfly.routing")

# More hosts than this in one invalidation (an expiry batch, a claim of many Workers) are only
# dropped: reading every route would slow the change down; their first requests ask.
PUSH_MAX_HOSTS = 64
# A version whose code is larger than this is not pushed (each shard would hold it until its first
# request); the route is, and the shard asks for the code once.
PUSH_CODE_BYTES = 256 * 1024
# With SQLite, `mayfly admin` (another process) changes accounts without telling the server: the
# live routes are read again this often and what changed is pushed (`reconcile_forever`).
RECONCILE_EVERY = 5.0


class PushTarget(Protocol):
    """The local data plane (runtime/dataplane.py's DataPlane)."""

    route_source: Any

    def next_seq(self) -> int: ...

    async def invalidate(
        self, hosts: list[str], routes: Mapping[str, Any] | None = None, seq: int | None = None
    ) -> None: ...


class RoutePusher:
    """The Invalidator of a node whose data plane runs next to its control plane."""

    def __init__(self, routing: RoutingService, local: PushTarget):
        self.routing = routing
        self.local = local
        local.route_source = self.snapshot
        self._known: Mapping[str, Any] | None = None  # the live routes at the last reconcile

    async def invalidate(self, hosts: list[str]) -> None:
        if not hosts:
            return
        seq = self.local.next_seq()  # before the read: see the module's docstring
        routes: dict[str, Any] = {}
        if len(hosts) <= PUSH_MAX_HOSTS:
            try:
                routes = await asyncio.to_thread(self._answers, hosts)
            except Exception:
                log.exception("could not read the routes of %s; the shards will ask", hosts)
                routes = {}
        await self.local.invalidate(hosts, routes, seq)
        self._pushed(hosts, routes)

    def _pushed(self, hosts: list[str], routes: Mapping[str, Any]) -> None:
        """What the shards hold now for `hosts`, as the next reconcile compares it: a Worker
        deployed and then suspended by `mayfly admin` before that reconcile must still count as a
        change (the shards serve the deploy's pushed route)."""
        if self._known is None:
            return
        known = dict(self._known)
        for host in hosts:
            answer = routes.get(host)
            if answer is not None and answer.get("status") == "ok":
                known[host] = {k: v for k, v in answer.items() if k != "version"}
            else:
                known.pop(host, None)  # dropped: the shards ask when it is requested
        self._known = known

    async def snapshot(self) -> Mapping[str, Any] | None:
        """Every live route, for a shard that starts (None: it asks for each)."""
        live = await asyncio.to_thread(self.routing.live_routes)
        if self._known is None:  # what the first shards start with: `reconcile` compares with it
            self._known = live
        return live

    async def reconcile_forever(self, every: float = RECONCILE_EVERY) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.reconcile()
            except Exception:
                log.exception("could not compare the live routes with the last ones")

    async def reconcile(self) -> list[str]:
        """Pushes the live routes that changed since the last call (a change the server was not
        told of: `mayfly admin` on SQLite); returns their hosts. The first call only reads."""
        seq = self.local.next_seq()
        live = await asyncio.to_thread(self.routing.live_routes)
        if live is None:
            return []
        known, self._known = self._known, live
        if known is None:
            return []
        changed = sorted(h for h in {*known, *live} if known.get(h) != live.get(h))
        if changed:
            await self.local.invalidate(changed, {h: live[h] for h in changed if h in live}, seq)
        return changed

    def _answers(self, hosts: list[str]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for host in hosts:
            answer = self.routing.route_with_code(host)
            version = answer.get("version")
            if version is not None and _code_bytes(version) > PUSH_CODE_BYTES:
                del answer["version"]
            answers[host] = answer
        return answers


def _code_bytes(version: Mapping[str, Any]) -> int:
    return sum(
        len(module.get("text") or "") + len(module.get("base64") or "")
        for module in version.get("modules", [])
    )
