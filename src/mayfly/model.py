"""Plain data shared by the layers: what services return and the API renders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

AccountKind = Literal["temporary", "permanent"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """One fixed ISO-8601 format (wrangler sorts created_on as strings)."""
    if value is None:
        return None
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_seconds(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    kind: AccountKind
    created_at: datetime
    expires_at: datetime | None
    claimed_at: datetime | None
    owner_user_id: str | None
    suspended_at: datetime | None = None  # by the operator: Workers answer 503, no writes

    @property
    def subdomain(self) -> str:
        return self.name


@dataclass(frozen=True)
class Principal:
    """Who is calling: the holder of an API token, scoped to one account."""

    token_id: str
    account_id: str
    token_kind: AccountKind
    user_id: str | None
    email: str | None


@dataclass(frozen=True)
class ProvisionedAccount:
    account: Account
    api_token: str
    claim_url: str


@dataclass(frozen=True)
class ModuleUpload:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Route:
    """What the data plane needs to serve a host."""

    status: Literal["ok", "unknown", "expired", "disabled", "moved", "quarantined", "suspended"]
    account_id: str | None = None
    script: str | None = None
    version_id: str | None = None
    expires_at: datetime | None = None
    message: str | None = None
    tail: bool = False
    # A quarantined Worker answers 503 until then (services/workers/quarantine.py); a suspended
    # account's Worker answers 503 and the data plane asks again then.
    quarantined_until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "account_id": self.account_id,
            "script": self.script,
            "version_id": self.version_id,
            "expires_at_ms": int(as_utc(self.expires_at).timestamp() * 1000)
            if self.expires_at
            else None,
            "message": self.message,
            "tail": self.tail,
            "quarantined_until_ms": int(as_utc(self.quarantined_until).timestamp() * 1000)
            if self.quarantined_until
            else None,
        }
