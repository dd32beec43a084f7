"""What every service needs, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mayfly.services.core.clock import Clock
from mayfly.services.core.crypto import Crypto
from mayfly.services.core.metrics import Metrics
from mayfly.settings import Settings
from mayfly.storage.blobs import BlobStore
from mayfly.storage.database import Database


class Invalidator(Protocol):
    """Tells the data plane that routes changed. Returns when every live shard acknowledged."""

    async def invalidate(self, hosts: list[str]) -> None: ...


class NoInvalidator:
    async def invalidate(self, hosts: list[str]) -> None:
        return None


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    blobs: BlobStore
    crypto: Crypto
    clock: Clock
    invalidator: Invalidator = field(default_factory=NoInvalidator)
    metrics: Metrics = field(default_factory=Metrics)

    def worker_host(self, script: str, account_name: str) -> str:
        return f"{script}.{account_name}.{self.settings.domain}"

    def worker_url(self, script: str, account_name: str) -> str:
        return self.settings.worker_url(script, account_name)
