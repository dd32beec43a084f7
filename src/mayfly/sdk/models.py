"""Typed results of the API calls the SDK makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

JS_MODULE = "application/javascript+module"


def parse_time(value: str) -> datetime:
    """An API timestamp (ISO 8601, `Z` or offset) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Challenge:
    """A proof-of-work challenge (spec §4.3)."""

    token: str
    seed: bytes
    k: int
    g: int
    terms_url: str | None = None
    privacy_url: str | None = None


@dataclass(frozen=True)
class TemporaryAccount:
    """A temporary account as provisioned (and cached): its token is shown once."""

    id: str
    name: str
    api_token: str
    expires_at: datetime
    claim_url: str
    claim_expires_at: datetime

    def is_valid(self, now: datetime) -> bool:
        return self.expires_at > now and self.claim_expires_at > now

    def seconds_left(self, now: datetime) -> float:
        return max(0.0, (self.expires_at - now).total_seconds())


@dataclass(frozen=True)
class AccountInfo:
    id: str
    name: str
    kind: Literal["temporary", "permanent"] | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ClaimStatus:
    """A temporary account as its agent sees it: still unclaimed, claimed by a human, or expired."""

    id: str
    name: str
    status: Literal["unclaimed", "claimed", "expired"]
    expires_at: datetime | None = None
    claimed_at: datetime | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class UploadModule:
    """One part of a Worker upload: the module's name is its path inside the upload."""

    name: str
    data: bytes
    content_type: str = JS_MODULE


@dataclass(frozen=True)
class WorkerUpload:
    """Everything a version is made of."""

    main_module: str
    modules: tuple[UploadModule, ...]
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    bindings: tuple[dict[str, Any], ...] = ()
    # Secrets set with `secret put` survive a deploy that does not mention them.
    keep_bindings: tuple[str, ...] = ("secret_text", "secret_key")

    @property
    def size(self) -> int:
        return sum(len(m.data) for m in self.modules)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "main_module": self.main_module,
            "bindings": list(self.bindings),
            "keep_bindings": list(self.keep_bindings),
        }
        if self.compatibility_date:
            meta["compatibility_date"] = self.compatibility_date
        if self.compatibility_flags:
            meta["compatibility_flags"] = list(self.compatibility_flags)
        return meta


@dataclass(frozen=True)
class UploadResult:
    version_id: str
    messages: tuple[str, ...] = ()
    url: str | None = None


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    url: str | None
    enabled: bool


@dataclass(frozen=True)
class Deployment:
    """The outcome of a deploy: where the Worker lives and which account it went into."""

    script: str
    version_id: str
    url: str | None
    account: AccountInfo
    messages: tuple[str, ...] = ()
    temporary: TemporaryAccount | None = None
    created_account: bool = False
    notices: tuple[str, ...] = field(default=())
