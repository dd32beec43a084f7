"""What every MCP tool stands on: the credentials, a client, running an action as the SDK's
account session does, and which Worker a tool acts on."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx

from mayfly.sdk import (
    AccountInfo,
    AccountSession,
    Credentials,
    Listener,
    MayflyClient,
    Ran,
    Resolution,
    SDKError,
    TemporaryAccountCache,
    config_dir,
    open_websocket,
    resolve_credentials,
)
from mayfly.sdk.tail import TailConnection

T = TypeVar("T")
KEY_NOT_FOUND = 10009
MAX_FILES = 500
MAX_LOG_SECONDS = 120
MAX_LOG_EVENTS = 1000


class ToolFailure(SDKError):
    """A bad tool argument, reported like the API's errors (a code and what to do)."""

    code = "invalid_arguments"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class BackendCore:
    """One agent's view of a Mayfly server. `token` fixes the credentials (remote use)."""

    api_url: str
    token: str | None = None
    directory: Path = field(default_factory=lambda: config_dir(os.environ))
    transport: httpx.BaseTransport | None = None
    clock: Callable[[], datetime] = _utcnow
    open_websocket: Callable[[str], TailConnection] = open_websocket
    remote: bool = False  # /mcp on the server: `path` would name the server's own files
    last_worker: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cache(self) -> TemporaryAccountCache:
        return TemporaryAccountCache(self.directory)

    def resolution(self) -> Resolution:
        if self.token is not None:
            return Resolution(Credentials(self.token, "--api-token"))
        return resolve_credentials(self.api_url, now=self.clock(), directory=self.directory)

    def client(self) -> MayflyClient:
        return MayflyClient(self.api_url, transport=self.transport)

    def run(
        self,
        action: Callable[[MayflyClient, AccountInfo], T],
        listener: Listener,
        *,
        temporary: bool = False,
    ) -> Ran[T]:
        resolution = self.resolution()
        source = resolution.credentials.source if resolution.credentials else None
        # A temporary account is only created when nothing else applies: an agent's default
        # `temporary=true` must not conflict with a login or a token.
        temporary = temporary and not self.remote and source in (None, "temporary")
        with self.client() as client:
            session = AccountSession(client, self.cache, listener, self.clock)
            return session.run(resolution, action, temporary=temporary)

    def worker(self, authed: MayflyClient, account: AccountInfo, name: str | None) -> str:
        """The Worker a tool acts on: the one named, else the last deployed, else the only one."""
        if name:
            return name
        with self._lock:
            if self.last_worker:
                return self.last_worker
        found = authed.call("GET", f"/accounts/{account.id}/workers/scripts")
        names = [str(s["id"]) for s in found or [] if isinstance(s, dict) and "id" in s]
        if len(names) == 1:
            return names[0]
        listed = ", ".join(sorted(names)) or "none"
        raise ToolFailure(
            f"Which Worker? Pass `name` (Workers in {account.name}: {listed}).",
            code="worker_required",
        )
