"""A Worker's quarantine as a record (why, until when, how many strikes), and its rules: strikes
forgiven with quiet time, cooldowns that double with each strike, the 10060 a quarantined Worker
answers; and the account's: when the verdicts against its Workers add up to quarantining the whole
account (`escalation`). The service that applies them to incidents is quarantine.py."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from mayfly.errors import Quarantined
from mayfly.model import as_utc, iso_seconds
from mayfly.storage.tables import account_quarantines, quarantines

KIND_WORDS = {
    "unresponsive": "froze the shard it ran on (it kept the CPU busy until the shard was killed)",
    "memory": "made the shard it ran on outgrow its memory budget",
    "crashed": "crashed the shard it ran on",
}


class Cooldown:
    """What a Worker's and an account's quarantine share: why (kind, detail, in words: `reason`),
    since when, until when unless lifted, and the strikes that set its length."""

    kind: str
    detail: str
    started_at: datetime
    until: datetime
    strikes: int
    lifted_at: datetime | None

    @property
    def reason(self) -> str:
        raise NotImplementedError

    def cooldown_json(self, now: datetime) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "detail": self.detail,
            "started_at": iso_seconds(self.started_at),
            "until": iso_seconds(self.until),
            "seconds_left": self.seconds_left(now),
            "strikes": self.strikes,
        }

    def is_active(self, now: datetime) -> bool:
        return self.lifted_at is None and as_utc(self.until) > now

    def seconds_left(self, now: datetime) -> int:
        return max(0, math.ceil((as_utc(self.until) - now).total_seconds()))


@dataclass(frozen=True)
class Quarantine(Cooldown):
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

    @property
    def reason(self) -> str:
        """Why, in words, for its owner (no other tenant's names: the detail is the platform's)."""
        return f"version {self.version_id} {KIND_WORDS.get(self.kind, self.kind)}"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"script": self.script, "version_id": self.version_id, **self.cooldown_json(now)}


def cooldown_fields(row: Any) -> dict[str, Any]:
    """The columns a Worker's and an account's quarantine rows share, as record fields."""
    return {
        "kind": row.kind,
        "detail": row.detail,
        "started_at": as_utc(row.started_at),
        "until": as_utc(row.until),
        "strikes": row.strikes,
        "lifted_at": as_utc(row.lifted_at) if row.lifted_at is not None else None,
        "lifted_by": row.lifted_by,
    }


def from_row(row: Any) -> Quarantine:
    return Quarantine(
        account_id=row.account_id,
        script=row.script,
        version_id=row.version_id,
        **cooldown_fields(row),
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


def decayed_strikes(
    previous: Quarantine | AccountQuarantine | None, now: datetime, decay: float
) -> int:
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


# -- the account ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One Worker found guilty: the rule quarantined it (a certain incident, or the prime suspect
    of two ambiguous ones) at `at`. A suspect the rule did not quarantine is no verdict."""

    script: str
    at: datetime


def escalation(
    verdicts: Iterable[Verdict],
    now: datetime,
    *,
    workers: int,
    window: float,
    spent_before: datetime | None = None,
) -> list[str] | None:
    """The Workers whose verdicts quarantine their whole account now, or None.

    The account is quarantined once `workers` distinct Worker names were found guilty within the
    last `window` seconds: a new name (or a deleted and re-created Worker under another name) is a
    fresh first incident for the Worker rule, not for this one. Verdicts up to
    `spent_before` (the start of the account's last quarantine) already cost it that quarantine
    and are not counted again. `workers` <= 0 turns this off."""
    if workers <= 0:
        return None
    since = now - timedelta(seconds=window)
    spent = as_utc(spent_before) if spent_before is not None else None
    names = sorted(
        {
            v.script
            for v in verdicts
            if since <= as_utc(v.at) <= now and (spent is None or as_utc(v.at) > spent)
        }
    )
    return names if len(names) >= workers else None


@dataclass(frozen=True)
class AccountQuarantine(Cooldown):
    account_id: str
    scripts: tuple[str, ...]  # the Workers whose verdicts started it
    kind: str
    detail: str
    started_at: datetime
    until: datetime
    strikes: int
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    @property
    def reason(self) -> str:
        """Why, in words, for its owner."""
        names = ", ".join(self.scripts)
        return (
            f"{len(self.scripts)} of its Workers ({names}) were each quarantined for taking down "
            "the shard they ran on"
        )

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"scripts": list(self.scripts), **self.cooldown_json(now)}


def account_from_row(row: Any) -> AccountQuarantine:
    return AccountQuarantine(
        account_id=row.account_id,
        scripts=tuple(row.scripts or ()),
        **cooldown_fields(row),
    )


def active_account_quarantine(
    conn: Connection, account_id: str, now: datetime
) -> AccountQuarantine | None:
    """The account's quarantine if one is running now."""
    row = conn.execute(
        select(account_quarantines).where(
            account_quarantines.c.account_id == account_id,
            account_quarantines.c.until > now,
            account_quarantines.c.lifted_at.is_(None),
        )
    ).first()
    return account_from_row(row) if row is not None else None


def account_suspended_error(
    quarantine: AccountQuarantine, account_name: str, now: datetime
) -> Quarantined:
    left = quarantine.seconds_left(now)
    return Quarantined(
        f"Account {account_name!r} is quarantined until {iso_seconds(quarantine.until)} "
        f"({left} s from now): {quarantine.reason}. While it lasts every Worker of the account "
        "answers 503 and no Worker can be uploaded, changed or deployed, under any name; a new "
        "Worker name, a new deploy or deleting a Worker does not lift it, and repeats double it. "
        "Fix the code and deploy again once it ends.",
        retry_after=left,
    )
