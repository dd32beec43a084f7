"""A Worker's quarantine as a record (why, until when, how many strikes), and its rules: strikes
forgiven with quiet time, cooldowns that double with each strike, the 10060 a quarantined Worker
answers. The service that applies them to incidents is quarantine.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mayfly.errors import Quarantined
from mayfly.model import as_utc, iso_seconds
from mayfly.storage.tables import quarantines

KIND_WORDS = {
    "unresponsive": "froze the shard it ran on (it kept the CPU busy until the shard was killed)",
    "memory": "made the shard it ran on outgrow its memory budget",
    "crashed": "crashed the shard it ran on",
}


@dataclass(frozen=True)
class Quarantine:
    account_id: str
    script: str
    version_id: str
    kind: str
    detail: str
    started_at: datetime
    until: datetime
    strikes: int
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    def is_active(self, now: datetime) -> bool:
        return self.lifted_at is None and as_utc(self.until) > now

    def seconds_left(self, now: datetime) -> int:
        return max(0, math.ceil((as_utc(self.until) - now).total_seconds()))

    @property
    def reason(self) -> str:
        """Why, in words, for its owner (no other tenant's names: the detail is the platform's)."""
        return f"version {self.version_id} {KIND_WORDS.get(self.kind, self.kind)}"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "script": self.script,
            "version_id": self.version_id,
            "kind": self.kind,
            "reason": self.reason,
            "detail": self.detail,
            "started_at": iso_seconds(self.started_at),
            "until": iso_seconds(self.until),
            "seconds_left": self.seconds_left(now),
            "strikes": self.strikes,
        }


def from_row(row: Any) -> Quarantine:
    return Quarantine(
        account_id=row.account_id,
        script=row.script,
        version_id=row.version_id,
        kind=row.kind,
        detail=row.detail,
        started_at=as_utc(row.started_at),
        until=as_utc(row.until),
        strikes=row.strikes,
        lifted_at=as_utc(row.lifted_at) if row.lifted_at is not None else None,
        lifted_by=row.lifted_by,
    )


def active_quarantine(
    conn: Connection, account_id: str, script: str, now: datetime
) -> Quarantine | None:
    """The Worker's quarantine if one is running now (the route and the API ask this)."""
    row = conn.execute(
        select(quarantines).where(
            quarantines.c.account_id == account_id,
            quarantines.c.script == script,
            quarantines.c.until > now,
            quarantines.c.lifted_at.is_(None),
        )
    ).first()
    return from_row(row) if row is not None else None


def suspended_error(quarantine: Quarantine, now: datetime) -> Quarantined:
    left = quarantine.seconds_left(now)
    return Quarantined(
        f"Worker {quarantine.script!r} is quarantined until {iso_seconds(quarantine.until)} "
        f"({left} s from now): {quarantine.reason}. While quarantined it answers 503 and cannot "
        "be changed; a new deploy does not lift it. Fix the code and deploy again once it ends.",
        retry_after=left,
    )


def decayed_strikes(previous: Quarantine | None, now: datetime, decay: float) -> int:
    """Strikes left once the quiet time since the last quarantine ended has forgiven some."""
    if previous is None:
        return 0
    quiet = (now - as_utc(previous.until)).total_seconds()
    if quiet <= 0 or decay <= 0:
        return previous.strikes
    return max(0, previous.strikes - int(quiet // decay))


def cooldown_seconds(strikes: int, base: float, maximum: float) -> float:
    """base × 2^(strikes − 1), at most `maximum` (strikes ≥ 1)."""
    exponent = min(max(strikes, 1) - 1, 62)  # beyond any maximum anyway
    return min(base * (2.0**exponent), maximum)
