"""Tails across replicas (PostgreSQL): a tail opened on replica A gets the events that a data-plane
node posted to replica B.

Each open session is listed in `cluster_tails` under its replica's node id, so any replica's route
answer says "tailed" (`tailed_elsewhere`: rows of live replicas only). A replica that receives
events for a Worker tailed elsewhere NOTIFYs them on the cluster's `tail` channel, in batches under
PostgreSQL's payload limit (a single event too large is cut to its outcome and a note); every
other API replica delivers them to its own sessions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import text

from mayfly.model import as_utc
from mayfly.services.operations.cluster import LIVE_WINDOW, MAX_PAYLOAD, Cluster
from mayfly.services.workers.tail import TailHub, TailSession
from mayfly.services.workers.tail import token_key as _token_key

log = logging.getLogger("mayfly.cluster")

LIVE_ROWS = (
    "SELECT 1 FROM cluster_tails t JOIN cluster_nodes n ON n.id = t.node_id "
    "WHERE t.account_id = :account AND t.script = :script AND t.node_id <> :me "
    "AND n.heartbeat_at > now() - make_interval(secs => :window) LIMIT 1"
)


class ClusterTails:
    def __init__(self, cluster: Cluster, hub: TailHub):
        self.cluster = cluster
        self.db = cluster.db
        self.hub = hub
        self._background: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Before the cluster starts: LISTEN on `tail`, and make the hub shared."""
        self.cluster.listeners["tail"] = self.receive
        self.hub.shared = self

    def add(self, session: TailSession) -> None:
        with self.db.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO cluster_tails (id, account_id, script, node_id, token_hash, "
                    "filters, created_at, expires_at) VALUES (:id, :account, :script, "
                    ":me, :hash, :filters, :created, :expires)"
                ),
                {
                    "id": session.id,
                    "account": session.account_id,
                    "script": session.script,
                    "me": self.cluster.id,
                    "hash": _token_key(session.token),
                    "filters": json.dumps(session.filters),
                    "created": session.created_at,
                    "expires": session.expires_at,
                },
            )

    def remove(self, session: TailSession) -> None:
        """Only this replica's row: a session that moved to another replica stays listed."""
        with self.db.begin() as conn:
            conn.execute(
                text("DELETE FROM cluster_tails WHERE id = :id AND node_id = :me"),
                {"id": session.id, "me": self.cluster.id},
            )

    def adopt(self, token_key: str, now: datetime) -> TailSession | None:
        with self.db.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE cluster_tails SET node_id = :me WHERE token_hash = :hash "
                    "AND expires_at > :now RETURNING id, account_id, script, filters, "
                    "created_at, expires_at"
                ),
                {"me": self.cluster.id, "hash": token_key, "now": now},
            ).first()
        if row is None:
            return None
        return TailSession(
            id=row.id,
            account_id=row.account_id,
            script=row.script,
            token="",  # the hub sets the token the WebSocket presented (its hash matched)
            filters=json.loads(row.filters),
            expires_at=as_utc(row.expires_at),
            created_at=as_utc(row.created_at),
        )

    def exists(self, session_id: str, account_id: str) -> bool:
        """A DELETE of a session another replica holds: it ends when its client goes."""
        with self.db.read() as conn:
            found = conn.execute(
                text("SELECT 1 FROM cluster_tails WHERE id = :id AND account_id = :account"),
                {"id": session_id, "account": account_id},
            ).first()
        return found is not None

    def tailed_elsewhere(self, account_id: str, script: str) -> bool:
        with self.db.read() as conn:
            found = conn.execute(
                text(LIVE_ROWS),
                {
                    "account": account_id,
                    "script": script,
                    "me": self.cluster.id,
                    "window": LIVE_WINDOW,
                },
            ).first()
        return found is not None

    def forward(self, account_id: str, script: str, events: list[dict[str, Any]]) -> None:
        """Called on the event loop with a batch the data plane posted here."""
        task = asyncio.create_task(self._forward(account_id, script, events))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _forward(self, account_id: str, script: str, events: list[dict[str, Any]]) -> None:
        try:
            elsewhere = await asyncio.to_thread(self.tailed_elsewhere, account_id, script)
            if not elsewhere:
                return
            for batch in batches(events, MAX_PAYLOAD - 400):
                await self.cluster.notify(
                    "tail", {"account_id": account_id, "script": script, "events": batch}
                )
        except Exception:
            log.exception("could not forward tail events of %s to the other replicas", script)

    async def receive(self, message: dict[str, Any]) -> None:
        events = message.get("events")
        if isinstance(events, list):
            self.hub.deliver(str(message.get("account_id")), str(message.get("script")), events)


def batches(events: list[dict[str, Any]], limit: int) -> list[list[dict[str, Any]]]:
    """Events grouped so that each group's JSON stays under `limit` bytes."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for event in events:
        encoded = len(json.dumps(event))
        if encoded > limit:
            event = {
                "outcome": event.get("outcome", "unknown"),
                "eventTimestamp": event.get("eventTimestamp"),
                "logs": [
                    {
                        "level": "warn",
                        "message": ["(event too large to forward between replicas)"],
                        "timestamp": event.get("eventTimestamp"),
                    }
                ],
                "exceptions": [],
            }
            encoded = len(json.dumps(event))
        if current and size + encoded > limit:
            out.append(current)
            current, size = [], 0
        current.append(event)
        size += encoded + 1
    if current:
        out.append(current)
    return out
