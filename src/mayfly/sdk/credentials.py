"""Which token to use, in order (DESIGN §6): `--api-token` / MAYFLY_API_TOKEN, the token saved by
`mayfly login`, then the cached temporary account. Files are per API URL, mode 0600, under
`$XDG_CONFIG_HOME/mayfly/` (default `~/.config/mayfly/`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from mayfly.sdk.client import normalise_api_url
from mayfly.sdk.models import TemporaryAccount, format_time, parse_time

TOKEN_ENV = "MAYFLY_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
ACCOUNT_ENV = "MAYFLY_ACCOUNT_ID"

Source = Literal["--api-token", "MAYFLY_API_TOKEN", "login", "temporary"]


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/mayfly`, else `~/.config/mayfly`."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "mayfly"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config" / "mayfly"


@dataclass(frozen=True)
class Credentials:
    token: str
    source: Source
    account_id: str | None = None
    temporary: TemporaryAccount | None = None


@dataclass(frozen=True)
class Resolution:
    """The credentials to use, if any, and a cached temporary account found to have expired."""

    credentials: Credentials | None
    expired: TemporaryAccount | None = None


class _JsonFile:
    """FILENAME in the config directory: a JSON object of one entry per API URL, written
    atomically with mode 0600."""

    FILENAME: ClassVar[str]

    def __init__(self, directory: Path) -> None:
        self.path = directory / self.FILENAME

    def entry(self, api_url: str) -> Any:
        return self.read().get(normalise_api_url(api_url))

    def save_entry(self, api_url: str, entry: dict[str, Any]) -> None:
        entries = self.read()
        entries[normalise_api_url(api_url)] = entry
        self.write(entries)

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        entries = data.get("accounts") if isinstance(data, dict) else None
        return entries if isinstance(entries, dict) else {}

    def write(self, entries: dict[str, Any]) -> None:
        import tempfile  # (shutil, …): only commands that save credentials need it

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"version": 1, "accounts": entries}, out, indent=2, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class TemporaryAccountCache(_JsonFile):
    """The temporary account this machine provisioned, one per API URL."""

    FILENAME = "temporary-accounts.json"

    def load(self, api_url: str) -> TemporaryAccount | None:
        raw = self.entry(api_url)
        if not isinstance(raw, dict):
            return None
        try:
            return TemporaryAccount(
                id=str(raw["id"]),
                name=str(raw["name"]),
                api_token=str(raw["api_token"]),
                expires_at=parse_time(raw["expires_at"]),
                claim_url=str(raw["claim_url"]),
                claim_expires_at=parse_time(raw["claim_expires_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, api_url: str, account: TemporaryAccount) -> None:
        self.save_entry(
            api_url,
            {
                "id": account.id,
                "name": account.name,
                "api_token": account.api_token,
                "expires_at": format_time(account.expires_at),
                "claim_url": account.claim_url,
                "claim_expires_at": format_time(account.claim_expires_at),
            },
        )

    def drop(self, api_url: str, token: str | None = None) -> None:
        """Forget the account for `api_url`; with `token`, only if it is still that account's
        (another process may have cached a new one meanwhile)."""
        key = normalise_api_url(api_url)
        entries = self.read()
        entry = entries.get(key)
        if entry is None:
            return
        if token is not None and isinstance(entry, dict) and entry.get("api_token") != token:
            return
        del entries[key]
        self.write(entries)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock while provisioning, so that two deploys started together on
        one machine share one account instead of creating two."""
        lock_path = self.path.with_suffix(".lock")
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _flock(fd)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def _flock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, at worst two accounts
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


@dataclass(frozen=True)
class SavedLogin:
    token: str
    account_id: str | None = None


class LoginStore(_JsonFile):
    """Tokens saved by `mayfly login`, one per API URL (`login` itself is a later command)."""

    FILENAME = "logins.json"

    def load(self, api_url: str) -> SavedLogin | None:
        raw = self.entry(api_url)
        if not isinstance(raw, dict) or not isinstance(raw.get("api_token"), str):
            return None
        account_id = raw.get("account_id")
        return SavedLogin(
            raw["api_token"], account_id if isinstance(account_id, str) and account_id else None
        )

    def save(self, api_url: str, login: SavedLogin) -> None:
        self.save_entry(api_url, {"api_token": login.token, "account_id": login.account_id})


def resolve_credentials(
    api_url: str,
    *,
    now: datetime,
    flag_token: str | None = None,
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Resolution:
    """The first source that has a token, in DESIGN §6's order."""
    env = os.environ if environ is None else environ
    directory = directory or config_dir(env)
    account_id = env.get(ACCOUNT_ENV) or None
    if flag_token:
        return Resolution(Credentials(flag_token, "--api-token", account_id))
    if env.get(TOKEN_ENV):
        return Resolution(Credentials(env[TOKEN_ENV], "MAYFLY_API_TOKEN", account_id))
    login = LoginStore(directory).load(api_url)
    if login is not None:
        return Resolution(Credentials(login.token, "login", account_id or login.account_id))
    cached = TemporaryAccountCache(directory).load(api_url)
    if cached is None:
        return Resolution(None)
    if not cached.is_valid(now):
        return Resolution(None, expired=cached)
    return Resolution(Credentials(cached.api_token, "temporary", cached.id, temporary=cached))
