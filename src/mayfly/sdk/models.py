"""Typed results of the API calls the SDK makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from mayfly.lazy_exports import lazy_exports

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
class QuarantineInfo:
    """A Worker paused (503, and 10060 through the API) because it took a server down."""

    script: str
    version_id: str
    kind: str  # unresponsive | memory | crashed
    reason: str
    until: datetime
    strikes: int = 1


@dataclass(frozen=True)
class AccountQuarantineInfo:
    """The whole account paused (every Worker 503, no deploy: 10060) because several of its
    Workers took servers down."""

    scripts: tuple[str, ...]
    kind: str
    reason: str
    until: datetime
    strikes: int = 1


@dataclass(frozen=True)
class AccountInfo:
    id: str
    name: str
    kind: Literal["temporary", "permanent"] | None = None
    expires_at: datetime | None = None
    quarantined: tuple[QuarantineInfo, ...] = ()
    account_quarantine: AccountQuarantineInfo | None = None


@dataclass(frozen=True)
class ClaimStatus:
    """A temporary account as its agent sees it: still unclaimed, claimed by a human, or expired."""

    id: str
    name: str
    status: Literal["unclaimed", "claimed", "expired"]
    expires_at: datetime | None = None
    claimed_at: datetime | None = None
    deleted_at: datetime | None = None


# The Worker-level results, in worker_models.py: imported from there on first use (they cost ~1 ms
# each to define, and `mayfly whoami` needs none of them).
__getattr__, __dir__ = lazy_exports(
    __name__.rpartition(".")[0],
    globals(),
    {
        "worker_models": (
            "UploadModule",
            "WorkerUpload",
            "KVBinding",
            "AssetSource",
            "AssetUpload",
            "ProvisionedNamespace",
            "AssetsUploaded",
            "WorkerVersion",
            "WorkerDeployment",
            "KVNamespaceInfo",
            "KVKey",
            "SecretInfo",
            "TailInfo",
            "UploadResult",
            "WorkerInfo",
            "Deployment",
        )
    },
)
