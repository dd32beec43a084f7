"""Run an API action with whatever credentials apply, provisioning a temporary account if asked.

Every account-scoped command goes through `AccountSession.run`: pick the credentials (explicit
token, login, cached temporary account, or a new one with `temporary=True`), find the account,
run the action. A cached temporary account the API no longer accepts is dropped from the cache:
when it expired (10001) and `temporary=True`, a new account is provisioned and the action is run
again there, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from mayfly.sdk.client import MayflyClient
from mayfly.sdk.credentials import Credentials, Resolution, TemporaryAccountCache
from mayfly.sdk.errors import (
    TEMPORARY_CLAIMED,
    TEMPORARY_EXPIRED,
    CredentialsError,
    MayflyAPIError,
    SDKError,
    TemporaryAccountClaimed,
)
from mayfly.sdk.models import AccountInfo, TemporaryAccount
from mayfly.sdk.provisioning import Listener, Timings, provision_temporary_account

T = TypeVar("T")

NO_CREDENTIALS = (
    "No Mayfly credentials: set MAYFLY_API_TOKEN (and MAYFLY_ACCOUNT_ID), or rerun this command "
    "with `--temporary` to use a temporary account (no sign-up; prints a claim URL)."
)
EVENT_WITH_CACHED = (
    "A temporary account is already cached ({name}); `--event` only applies when a new one is "
    "created. Rerun without --event to reuse it."
)
TEMPORARY_CONFLICT = (
    "`--temporary` cannot be used while other credentials are set ({source}). Remove "
    "`--temporary` to use them, or unset them to use a temporary account."
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Ran(Generic[T]):
    """An action's value, and the account and credentials it ran with."""

    value: T
    account: AccountInfo
    credentials: Credentials
    created_account: bool = False
    notices: tuple[str, ...] = ()

    @property
    def temporary(self) -> TemporaryAccount | None:
        return self.credentials.temporary


Action = Callable[[MayflyClient, AccountInfo], T]


@dataclass
class AccountSession:
    """Runs actions through `client` (unauthenticated; tokens are added per credential)."""

    client: MayflyClient
    cache: TemporaryAccountCache
    listener: Listener
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.timings = Timings()
        self.event_code: str | None = None

    def run(
        self,
        resolution: Resolution,
        action: Action[T],
        *,
        temporary: bool = False,
        account_id: str | None = None,
        event_code: str | None = None,
    ) -> Ran[T]:
        """Run `action(authed_client, account)`. `account_id` (e.g. from wrangler.toml) applies
        to tokens that reach several accounts; `event_code` to a temporary account created now."""
        credentials = resolution.credentials
        if temporary and credentials is not None and credentials.source != "temporary":
            raise CredentialsError(
                TEMPORARY_CONFLICT.format(source=credentials.source), code="temporary_conflict"
            )
        if event_code and credentials is not None and credentials.temporary is not None:
            raise CredentialsError(
                EVENT_WITH_CACHED.format(name=credentials.temporary.name), code="event_conflict"
            )
        self.event_code = event_code
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
            account, value = self._run_with(credentials, action, account_id)
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
            account, value = self._run_with(credentials, action, account_id)
        return Ran(value, account, credentials, created, tuple(notices))

    def _run_with(
        self, credentials: Credentials, action: Action[T], account_id: str | None
    ) -> tuple[AccountInfo, T]:
        authed = self.client.with_token(credentials.token)
        account = account_for(authed, credentials, account_id)
        return account, action(authed, account)

    def _drop_rejected(self, account: TemporaryAccount, exc: MayflyAPIError, retry: bool) -> None:
        """Forget a cached account the API refused; raise unless a new one should be tried."""
        self.cache.drop(self.client.api_url, token=account.api_token)
        if exc.code == TEMPORARY_CLAIMED:
            raise self._claimed(account, exc.status) from exc
        if not retry:
            raise MayflyAPIError(
                exc.code,
                f"The temporary account {account.name} has expired or was deleted; it was "
                "removed from the cache. Rerun with `--temporary` to get a new one.",
                exc.status,
            ) from exc

    def _claimed(self, account: TemporaryAccount, status: int) -> TemporaryAccountClaimed:
        """What the agent must know once a human claimed its account, and how to get access."""
        claimed_at: str | None = None
        try:
            found = self.client.with_token(account.api_token).claim_status(account.id)
            if found.claimed_at is not None:
                claimed_at = _clock(found.claimed_at)
        except SDKError:
            pass  # the facts below do not depend on it
        pages = account.claim_url.split("/claim/", 1)[0]
        login = f"mayfly login --api-url {self.client.api_url}"
        dashboard = f"{pages}/dashboard/accounts/{account.id}"
        when = f" at {claimed_at}" if claimed_at else ""
        message = (
            f"The temporary account {account.name} was claimed by a human{when}: it is their "
            "account now, with its Workers and URLs, and its token no longer works (it was removed "
            "from the cache). No new temporary account was created. To deploy to it again, ask "
            f"that human for access: run `{login}` and have them approve the code in a browser "
            f"where they are logged in, or have them create an API token at {dashboard} and set "
            "MAYFLY_API_TOKEN. For a separate new temporary account, rerun with `--temporary`."
        )
        return TemporaryAccountClaimed(
            message,
            status,
            account_id=account.id,
            account_name=account.name,
            claimed_at=claimed_at,
            login_command=login,
            dashboard_url=dashboard,
        )

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
                    self.client, self.cache, self.listener, self.timings, self.event_code
                )
                created = True
        self.listener.temporary_account(account, created=created)
        return Credentials(account.api_token, "temporary", account.id, temporary=account), created


def account_for(
    authed: MayflyClient, credentials: Credentials, account_id: str | None = None
) -> AccountInfo:
    """The account to act on: the temporary one, the one named, else the token's first."""
    if credentials.temporary is not None:
        account = credentials.temporary
        return AccountInfo(account.id, account.name, "temporary", account.expires_at)
    wanted = credentials.account_id or account_id
    if wanted:
        return authed.get_account(wanted)
    accounts = authed.list_accounts()
    if not accounts:
        raise CredentialsError(
            f"The API token ({credentials.source}) reaches no account.", code="no_account"
        )
    return accounts[0]


def _clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
