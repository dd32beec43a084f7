"""Deploy a Worker with whatever credentials apply, provisioning a temporary account if asked.

The flow: pick the credentials (explicit token, login, cached temporary account, or a new one with
`temporary=True`), find the account, PUT the script (stores a version and deploys it), then read the
Worker's URL. A cached temporary account the API no longer accepts is dropped from the cache: when
it expired (10001) and `temporary=True`, a new account is provisioned and the upload retried once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mayfly.sdk.client import MayflyClient
from mayfly.sdk.credentials import Credentials, Resolution, TemporaryAccountCache
from mayfly.sdk.errors import (
    TEMPORARY_CLAIMED,
    TEMPORARY_EXPIRED,
    CredentialsError,
    MayflyAPIError,
)
from mayfly.sdk.models import AccountInfo, Deployment, TemporaryAccount, WorkerUpload
from mayfly.sdk.provisioning import Listener, QuietListener, Timings, provision_temporary_account

NO_CREDENTIALS = (
    "No Mayfly credentials: set MAYFLY_API_TOKEN (and MAYFLY_ACCOUNT_ID), or rerun this command "
    "with `--temporary` to deploy into a temporary account (no sign-up; prints a claim URL)."
)
TEMPORARY_CONFLICT = (
    "`--temporary` cannot be used while other credentials are set ({source}). Remove "
    "`--temporary` to use them, or unset them to deploy into a temporary account."
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deployer:
    """Deploys Workers through `client` (unauthenticated; tokens are added per credential)."""

    client: MayflyClient
    cache: TemporaryAccountCache
    listener: Listener
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.timings = Timings()

    @classmethod
    def quiet(cls, client: MayflyClient, cache: TemporaryAccountCache) -> Deployer:
        return cls(client, cache, QuietListener())

    def deploy(
        self,
        script: str,
        upload: WorkerUpload,
        resolution: Resolution,
        *,
        temporary: bool = False,
        account_id: str | None = None,
    ) -> Deployment:
        """Deploy `upload` as `script`. `account_id` (e.g. from wrangler.toml) applies to tokens."""
        credentials = resolution.credentials
        if temporary and credentials is not None and credentials.source != "temporary":
            raise CredentialsError(
                TEMPORARY_CONFLICT.format(source=credentials.source), code="temporary_conflict"
            )
        notices: list[str] = []
        if credentials is None and resolution.expired is not None:
            old = resolution.expired
            self.cache.drop(self.client.api_url, token=old.api_token)
            self._notice(
                notices,
                f"The temporary account {old.name} expired at {_clock(old.expires_at)}"
                + ("; creating a new one." if temporary else "; it was removed from the cache."),
            )
        created = False
        if credentials is None:
            if not temporary:
                raise CredentialsError(NO_CREDENTIALS)
            credentials, created = self._provision()
        elif credentials.temporary is not None:
            self.listener.temporary_account(credentials.temporary, created=False)
        try:
            deployment = self._deploy_with(credentials, script, upload, account_id)
        except MayflyAPIError as exc:
            if credentials.temporary is None or exc.code not in (
                TEMPORARY_EXPIRED,
                TEMPORARY_CLAIMED,
            ):
                raise
            self._drop_rejected(credentials.temporary, exc, retry=temporary and not created)
            self._notice(
                notices,
                f"The temporary account {credentials.temporary.name} has expired or was deleted "
                "on the server; removed it from the cache and creating a new one.",
            )
            credentials, created = self._provision(rejected=credentials.token)
            deployment = self._deploy_with(credentials, script, upload, account_id)
        return dataclasses.replace(
            deployment,
            temporary=credentials.temporary,
            created_account=created,
            notices=tuple(notices),
        )

    def _drop_rejected(self, account: TemporaryAccount, exc: MayflyAPIError, retry: bool) -> None:
        """Forget a cached account the API refused; raise unless a new one should be tried."""
        self.cache.drop(self.client.api_url, token=account.api_token)
        if exc.code == TEMPORARY_CLAIMED:
            raise MayflyAPIError(
                exc.code,
                f"The temporary account {account.name} was claimed by a human, who now owns it; "
                "its token no longer works and was removed from the cache. Ask them for an API "
                "token (MAYFLY_API_TOKEN), or rerun with `--temporary` for a new temporary "
                "account.",
                exc.status,
            ) from exc
        if not retry:
            raise MayflyAPIError(
                exc.code,
                f"The temporary account {account.name} has expired or was deleted; it was "
                "removed from the cache. Rerun with `--temporary` to get a new one.",
                exc.status,
            ) from exc

    def _notice(self, notices: list[str], message: str) -> None:
        notices.append(message)
        self.listener.notice(message)

    def _provision(self, rejected: str | None = None) -> tuple[Credentials, bool]:
        """A new temporary account, unless another process cached a usable one meanwhile."""
        with self.cache.locked():
            cached = self.cache.load(self.client.api_url)
            if (
                cached is not None
                and cached.is_valid(self.clock())
                and (cached.api_token != rejected)
            ):
                account, created = cached, False
            else:
                account = provision_temporary_account(
                    self.client, self.cache, self.listener, self.timings
                )
                created = True
        self.listener.temporary_account(account, created=created)
        return Credentials(account.api_token, "temporary", account.id, temporary=account), created

    def _deploy_with(
        self,
        credentials: Credentials,
        script: str,
        upload: WorkerUpload,
        account_id: str | None,
    ) -> Deployment:
        authed = self.client.with_token(credentials.token)
        account = self.account_for(authed, credentials, account_id)
        task = f"Uploading {script} ({len(upload.modules)} modules, {_size(upload.size)})"
        self.listener.begin(task)
        started = time.perf_counter()
        uploaded = authed.upload_script(account.id, script, upload)
        worker = authed.get_worker(account.id, script)
        elapsed = time.perf_counter() - started
        self.timings.add("upload", elapsed)
        self.listener.end(task, elapsed)
        return Deployment(
            script=script,
            version_id=uploaded.version_id,
            url=worker.url or uploaded.url,
            account=account,
            messages=uploaded.messages,
        )

    @staticmethod
    def account_for(
        authed: MayflyClient, credentials: Credentials, account_id: str | None = None
    ) -> AccountInfo:
        """The account to act on: the temporary one, the one named, else the token's first."""
        if credentials.temporary is not None:
            return _temporary_info(credentials.temporary)
        wanted = credentials.account_id or account_id
        if wanted:
            return authed.get_account(wanted)
        accounts = authed.list_accounts()
        if not accounts:
            raise CredentialsError(
                f"The API token ({credentials.source}) reaches no account.", code="no_account"
            )
        return accounts[0]


def _temporary_info(account: TemporaryAccount) -> AccountInfo:
    return AccountInfo(account.id, account.name, "temporary", account.expires_at)


def _clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"
