"""Live tails: who is watching which Worker, and fanning the data plane's events out to them.

Logs are live only, never stored. Sessions live in this control plane's memory (a tail reaches the
replica that created it). The data plane produces events only for Workers someone is tailing: the
route answer says so, and opening or closing the first/last session invalidates the route.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mayfly.errors import ValidationError
from mayfly.model import Account
from mayfly.services.context import ServiceContext

TAIL_LIFETIME = timedelta(hours=6)
QUEUE_LIMIT = 1000


@dataclass
class TailSession:
    id: str
    account_id: str
    script: str
    token: str
    filters: list[dict[str, Any]]
    expires_at: datetime
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT)
    )
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


class TailHub:
    def __init__(self) -> None:
        self._sessions: dict[str, TailSession] = {}

    def open(self, account_id: str, script: str, filters: Any, now: datetime) -> TailSession:
        session = TailSession(
            id=secrets.token_hex(16),
            account_id=account_id,
            script=script,
            token=secrets.token_urlsafe(32),
            filters=check_filters(filters),
            expires_at=now + TAIL_LIFETIME,
        )
        self._sessions[session.id] = session
        return session

    def close(self, session_id: str, account_id: str) -> TailSession | None:
        session = self._sessions.get(session_id)
        if session is None or session.account_id != account_id:
            return None
        return self._sessions.pop(session_id)

    def by_token(self, token: str, now: datetime) -> TailSession | None:
        for session in self._sessions.values():
            if secrets.compare_digest(session.token, token) and session.expires_at > now:
                return session
        return None

    def is_tailed(self, account_id: str, script: str) -> bool:
        return any(
            s.account_id == account_id and s.script == script for s in self._sessions.values()
        )

    def close_account(self, account_id: str) -> None:
        for session_id in [k for k, s in self._sessions.items() if s.account_id == account_id]:
            del self._sessions[session_id]

    def publish(self, account_id: str, script: str, events: list[dict[str, Any]]) -> int:
        """Deliver events to every matching session; returns how many deliveries were made."""
        delivered = 0
        for session in list(self._sessions.values()):
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
            return False
        if not self.hub.is_tailed(account.id, session.script):
            await self.ctx.invalidator.invalidate(
                [self.ctx.worker_host(session.script, account.name)]
            )
        return True
