"""Live tails: who is watching which Worker, and fanning the data plane's events out to them.

Logs are live only, never stored. Sessions live in the memory of the replica that created them;
with PostgreSQL they are also listed in the database and events posted to another replica are
forwarded to theirs (`SharedTails`, services/operations/cluster_tails.py). The data plane produces
events only for Workers someone is tailing: the route answer says so, and opening or closing the
first/last session invalidates the route.
A session ends when its WebSocket goes away (a killed `wrangler tail` never says DELETE), when it
was never connected, at its lifetime, and when its account expires or is deleted (`sweep`).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from mayfly.errors import RateLimited, ValidationError
from mayfly.model import Account, as_utc
from mayfly.services.context import ServiceContext
from mayfly.storage.tables import accounts

TAIL_LIFETIME = timedelta(hours=6)
QUEUE_LIMIT = 1000
CONNECT_GRACE_SECONDS = 60  # a session whose WebSocket never came is closed after this
MAX_SESSIONS_PER_ACCOUNT = 20
MAX_SESSIONS = 10_000


@dataclass
class TailSession:
    id: str
    account_id: str
    script: str
    token: str
    filters: list[dict[str, Any]]
    expires_at: datetime
    created_at: datetime
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT)
    )
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    connected: bool = False
    dropped: int = 0


def check_filters(filters: Any) -> list[dict[str, Any]]:
    if filters is None:
        return []
    if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
        raise ValidationError("filters must be a list of objects.")
    known = {"sampling_rate", "outcome", "method", "header", "client_ip", "query", "scriptVersion"}
    for item in filters:
        unknown = set(item) - known
        if unknown:
            raise ValidationError(f"Unknown tail filter: {', '.join(sorted(unknown))}.")
    return filters


def matches(event: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    """wrangler's tail filters (spec §5.12); all of them must hold."""
    request = (event.get("event") or {}).get("request") or {}
    for item in filters:
        if "sampling_rate" in item and random.random() >= float(item["sampling_rate"]):
            return False
        if "outcome" in item and event.get("outcome") not in item["outcome"]:
            return False
        if "method" in item and request.get("method") not in item["method"]:
            return False
        if "header" in item:
            header = item["header"] or {}
            value = (request.get("headers") or {}).get(str(header.get("key", "")).lower())
            if value is None or (header.get("query") and header["query"] not in value):
                return False
        if "query" in item:
            needle = str(item["query"])
            haystack = str(event.get("logs", [])) + str(event.get("exceptions", []))
            if needle not in haystack:
                return False
        if (
            "scriptVersion" in item
            and event.get("scriptVersion", {}).get("id") != item["scriptVersion"]
        ):
            return False
    return True


def normalise(event: dict[str, Any], script: str) -> dict[str, Any]:
    """The trace item wrangler reads: outcome, scriptName, logs, exceptions, eventTimestamp, event."""
    return {
        "outcome": event.get("outcome", "unknown"),
        "scriptName": script,
        "exceptions": list(event.get("exceptions") or []),
        "logs": list(event.get("logs") or []),
        "eventTimestamp": event.get("eventTimestamp"),
        "event": event.get("event"),
        **({"scriptVersion": event["scriptVersion"]} if "scriptVersion" in event else {}),
    }


class SharedTails(Protocol):
    """The cluster's view of tails (set on the hub when replicas share a database)."""

    def add(self, session: TailSession) -> None: ...
    def remove(self, session: TailSession) -> None: ...
    def adopt(self, token_key: str, now: datetime) -> TailSession | None: ...
    def exists(self, session_id: str, account_id: str) -> bool: ...
    def tailed_elsewhere(self, account_id: str, script: str) -> bool: ...
    def forward(self, account_id: str, script: str, events: list[dict[str, Any]]) -> None: ...


class TailHub:
    """The open tail sessions of this control plane.

    Mutated on the event loop; `is_tailed` is also asked from worker threads (route lookups), so
    it reads an immutable snapshot that every change replaces. Bounded: at most
    MAX_SESSIONS_PER_ACCOUNT per account and MAX_SESSIONS in all.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, TailSession] = {}
        self._by_token: dict[str, TailSession] = {}
        self._tailed: frozenset[tuple[str, str]] = frozenset()
        # Sessions that ended on their own, so that the client's DELETE afterwards still succeeds.
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.shared: SharedTails | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[TailSession]:
        return list(self._sessions.values())

    def open(self, account_id: str, script: str, filters: Any, now: datetime) -> TailSession:
        session = TailSession(
            id=secrets.token_hex(16),
            account_id=account_id,
            script=script,
            token=secrets.token_urlsafe(32),
            filters=check_filters(filters),
            expires_at=now + TAIL_LIFETIME,
            created_at=now,
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                raise RateLimited(
                    "This server has as many open tails as it allows; try again later.",
                    retry_after=60,
                )
            if sum(s.account_id == account_id for s in self._sessions.values()) >= (
                MAX_SESSIONS_PER_ACCOUNT
            ):
                raise RateLimited(
                    f"This account already has {MAX_SESSIONS_PER_ACCOUNT} open tails; stop one "
                    "(end its `wrangler tail`) or wait until an unused one is closed.",
                    retry_after=CONNECT_GRACE_SECONDS,
                )
            self._sessions[session.id] = session
            self._by_token[token_key(session.token)] = session
            self._snapshot()
        if self.shared is not None:
            self.shared.add(session)
        return session

    def close(self, session_id: str, account_id: str) -> TailSession | None:
        session = self._sessions.get(session_id)
        if session is None or session.account_id != account_id:
            return None
        return self.remove(session)

    def ended(self, session_id: str, account_id: str) -> bool:
        """Whether the account's session ended recently (its WebSocket went, or it was swept), or
        (shared) is another replica's."""
        if self._ended.get(session_id) == account_id:
            return True
        return self.shared is not None and self.shared.exists(session_id, account_id)

    def adopt(self, token: str, now: datetime) -> TailSession | None:
        """(shared) A session opened on another replica whose WebSocket came here: it moves here."""
        if self.shared is None:
            return None
        session = self.shared.adopt(token_key(token), now)  # found by the token's hash
        if session is None:
            return None
        session.token = token
        with self._lock:
            self._sessions[session.id] = session
            self._by_token[token_key(token)] = session
            self._snapshot()
        return session

    def remove(self, session: TailSession) -> TailSession | None:
        """Forget a session and wake its WebSocket, which then closes. None if already gone."""
        with self._lock:
            if self._sessions.pop(session.id, None) is None:
                return None
            self._by_token.pop(token_key(session.token), None)
            self._snapshot()
            self._ended[session.id] = session.account_id
            while len(self._ended) > MAX_SESSIONS:
                self._ended.popitem(last=False)
        session.closed.set()
        if self.shared is not None:
            self.shared.remove(session)
        return session

    def by_token(self, token: str, now: datetime) -> TailSession | None:
        session = self._by_token.get(token_key(token))
        if session is None or not secrets.compare_digest(session.token, token):
            return None
        return session if session.expires_at > now else None

    def is_tailed(self, account_id: str, script: str) -> bool:
        """Whether anyone tails the Worker, on this replica or (shared) on another."""
        if (account_id, script) in self._tailed:
            return True
        return self.shared is not None and self.shared.tailed_elsewhere(account_id, script)

    def publish(self, account_id: str, script: str, events: list[dict[str, Any]]) -> int:
        """Deliver events to every matching session here, and hand them to the other replicas'
        sessions (shared); returns how many deliveries were made here."""
        if self.shared is not None:
            self.shared.forward(account_id, script, events)
        return self.deliver(account_id, script, events)

    def deliver(self, account_id: str, script: str, events: list[dict[str, Any]]) -> int:
        """Deliver events to this replica's matching sessions."""
        delivered = 0
        for session in self.sessions():
            if session.account_id != account_id or session.script != script:
                continue
            for raw in events:
                event = normalise(raw, script)
                if not matches(event, session.filters):
                    continue
                try:
                    session.queue.put_nowait(event)
                    delivered += 1
                except asyncio.QueueFull:
                    session.dropped += 1
        return delivered

    def _snapshot(self) -> None:
        self._tailed = frozenset((s.account_id, s.script) for s in self._sessions.values())


def token_key(token: str) -> str:
    # A digest, so that looking a token up in the dict reveals nothing through timing.
    return hashlib.sha256(token.encode()).hexdigest()


class TailService:
    """Opening and closing tails; the first and last session of a Worker change its route."""

    def __init__(self, ctx: ServiceContext, hub: TailHub):
        self.ctx = ctx
        self.hub = hub

    async def open(self, account: Account, script: str, filters: Any) -> TailSession:
        was_tailed = self.hub.is_tailed(account.id, script)
        session = self.hub.open(account.id, script, filters, self.ctx.clock.now())
        if not was_tailed:
            await self.ctx.invalidator.invalidate([self.ctx.worker_host(script, account.name)])
        return session

    async def close(self, account: Account, session_id: str) -> bool:
        session = self.hub.close(session_id, account.id)
        if session is None:
            return self.hub.ended(session_id, account.id)
        await self._untailed([session], {account.id: account.name})
        return True

    async def end(self, session: TailSession) -> None:
        """The session's WebSocket went away: nobody will read its events any more."""
        if self.hub.remove(session) is not None:
            names = await asyncio.to_thread(self._live_account_names, {session.account_id})
            await self._untailed([session], names)

    async def sweep(self) -> int:
        """Close sessions past their lifetime, never connected within CONNECT_GRACE_SECONDS, or
        whose account expired or was deleted. Returns how many were closed."""
        now = self.ctx.clock.now()
        sessions = self.hub.sessions()
        if not sessions:
            return 0
        names = await asyncio.to_thread(self._live_account_names, {s.account_id for s in sessions})
        grace = timedelta(seconds=CONNECT_GRACE_SECONDS)
        doomed = [
            s
            for s in sessions
            if s.account_id not in names
            or s.expires_at <= now
            or (not s.connected and s.created_at + grace <= now)
        ]
        closed = [s for s in doomed if self.hub.remove(s) is not None]
        await self._untailed(closed, names)
        return len(closed)

    def _live_account_names(self, account_ids: set[str]) -> dict[str, str]:
        """Names of the accounts that exist and have not expired."""
        now = self.ctx.clock.now()
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(accounts.c.id, accounts.c.name, accounts.c.expires_at).where(
                    accounts.c.id.in_(account_ids)
                )
            ).all()
        return {
            row.id: row.name
            for row in rows
            if row.expires_at is None or as_utc(row.expires_at) > now
        }

    async def _untailed(self, closed: list[TailSession], names: dict[str, str]) -> None:
        """Tell the data plane to stop producing events for Workers nobody tails any more."""
        hosts = {
            self.ctx.worker_host(s.script, names[s.account_id])
            for s in closed
            if s.account_id in names and not self.hub.is_tailed(s.account_id, s.script)
        }
        if hosts:
            await self.ctx.invalidator.invalidate(sorted(hosts))
