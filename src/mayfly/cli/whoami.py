"""`mayfly whoami`: which credentials are in use, and the account they reach."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any

import click

from mayfly.cli.options import api_options, client_env, token_option
from mayfly.cli.output import CommandFailed, Output, format_duration, table
from mayfly.sdk.credentials import (
    Credentials,
    LoginStore,
    TemporaryAccountCache,
    resolve_credentials,
)
from mayfly.sdk.errors import TEMPORARY_CLAIMED, TEMPORARY_EXPIRED, MayflyAPIError
from mayfly.sdk.models import (
    AccountInfo,
    AccountQuarantineInfo,
    QuarantineInfo,
    TemporaryAccount,
    format_time,
)
from mayfly.sdk.session import account_for

if TYPE_CHECKING:
    from mayfly.sdk.client import MayflyClient

NOT_AUTHENTICATED = (
    "Not authenticated: no --api-token, no MAYFLY_API_TOKEN, no saved login and no cached "
    "temporary account for {api_url}. Run `mayfly deploy --temporary` to get a temporary account."
)


@click.command()
@click.option("--show-token", is_flag=True, help="Also print the API token itself.")
@token_option
@api_options
def whoami(show_token: bool, api_token: str | None, api_url: str, as_json: bool) -> None:
    """Show which credentials are in use and the account they reach.

    For a temporary account: the time left and the claim URL. The token is printed only with
    --show-token.

    \b
    --json prints: api_url, source ("--api-token" | "MAYFLY_API_TOKEN" |
      "login" | "temporary"), source_description, account_id, account_name,
      kind, expires_at, seconds_left, claim_url, claim_status ("unclaimed"
      for a temporary account, else null), quarantined ([{script,
      version_id, kind, reason, until, seconds_left}]: Workers paused
      because they took a server down), account_quarantine ({scripts,
      kind, reason, until, seconds_left} or null: the whole account paused,
      every Worker answers 503 and nothing can be deployed, because several
      of its Workers were quarantined), api_token (--show-token).
    """
    env = client_env()
    out = Output(as_json, env.now)
    directory = env.config_dir()
    cache = TemporaryAccountCache(directory)
    with out.errors():
        resolution = resolve_credentials(
            api_url, now=env.now(), flag_token=api_token, directory=directory
        )
        credentials = resolution.credentials
        if credentials is None:
            if resolution.expired is not None:
                cache.drop(api_url, token=resolution.expired.api_token)
                raise CommandFailed(
                    TEMPORARY_EXPIRED,
                    f"The temporary account {resolution.expired.name} expired at "
                    f"{format_time(resolution.expired.expires_at)}; it was removed from the cache. "
                    "Run `mayfly deploy --temporary` for a new one.",
                )
            raise CommandFailed("no_credentials", NOT_AUTHENTICATED.format(api_url=api_url))
        with env.client(api_url) as client:
            authed = client.with_token(credentials.token)
            if credentials.temporary is not None:
                account = temporary_account(authed, credentials.temporary, cache)
                shown = authed.get_account(account.id)
                account = dataclasses.replace(
                    account,
                    quarantined=shown.quarantined,
                    account_quarantine=shown.account_quarantine,
                )
            else:
                account = account_for(authed, credentials)
        source = describe_source(credentials, cache, LoginStore(directory))
        out.result(*whoami_result(api_url, credentials, account, source, show_token, out))


def temporary_account(
    authed: MayflyClient, cached: TemporaryAccount, cache: TemporaryAccountCache
) -> AccountInfo:
    """The cached temporary account as the server sees it; dropped if claimed or expired."""
    gone = f"The cached temporary account {cached.name} was removed from the cache."
    try:
        status = authed.claim_status(cached.id)
    except MayflyAPIError as exc:
        if exc.code in (TEMPORARY_EXPIRED, TEMPORARY_CLAIMED):
            cache.drop(authed.api_url, token=cached.api_token)
            raise MayflyAPIError(exc.code, f"{exc.message} ({gone})", exc.status) from exc
        raise
    if status.status == "claimed":
        cache.drop(authed.api_url, token=cached.api_token)
        when = f" at {format_time(status.claimed_at)}" if status.claimed_at else ""
        raise CommandFailed(
            TEMPORARY_CLAIMED,
            f"The temporary account {cached.name} was claimed by a human{when}, who now owns "
            f"it; its token no longer works. {gone} To use it, ask them for access: run "
            f"`mayfly login --api-url {authed.api_url}` and have them approve it where they are "
            "logged in, or ask for an API token from the dashboard (MAYFLY_API_TOKEN). "
            "`mayfly deploy --temporary` makes a separate new account.",
        )
    if status.status == "expired":
        cache.drop(authed.api_url, token=cached.api_token)
        raise CommandFailed(
            TEMPORARY_EXPIRED,
            f"The temporary account {cached.name} expired and was deleted. {gone} "
            "Run `mayfly deploy --temporary` for a new one.",
        )
    return AccountInfo(status.id, status.name, "temporary", status.expires_at)


def describe_source(
    credentials: Credentials, cache: TemporaryAccountCache, logins: LoginStore
) -> str:
    return {
        "--api-token": "the --api-token option",
        "MAYFLY_API_TOKEN": "the MAYFLY_API_TOKEN environment variable",
        "login": f"the token saved by `mayfly login` ({logins.path})",
        "temporary": f"the cached temporary account ({cache.path})",
    }[credentials.source]


def _seconds_left(account: AccountInfo, out: Output) -> float | None:
    if account.expires_at is None:
        return None
    return max(0.0, (account.expires_at - out.now()).total_seconds())


def whoami_result(
    api_url: str,
    credentials: Credentials,
    account: AccountInfo,
    source: str,
    show_token: bool,
    out: Output,
) -> tuple[dict[str, Any], list[str]]:
    """What whoami prints: the --json object, and the lines for a terminal."""
    left = _seconds_left(account, out)
    data: dict[str, Any] = {
        "api_url": api_url,
        "source": credentials.source,
        "source_description": source,
        "account_id": account.id,
        "account_name": account.name,
        "kind": account.kind,
        "expires_at": format_time(account.expires_at) if account.expires_at else None,
        "seconds_left": round(left) if left is not None else None,
        "claim_url": credentials.temporary.claim_url if credentials.temporary else None,
        "claim_status": "unclaimed" if credentials.temporary else None,
        "quarantined": [quarantine_json(q, out) for q in account.quarantined],
        "account_quarantine": (
            account_quarantine_json(account.account_quarantine, out)
            if account.account_quarantine is not None
            else None
        ),
    }
    rows = [
        ("API", api_url),
        ("Credentials", source),
        ("Account", f"{account.name} ({account.id})"),
    ]
    if account.kind == "temporary" and left is not None and account.expires_at is not None:
        rows.append(("Expires", f"in {format_duration(left)} ({format_time(account.expires_at)})"))
    elif account.kind:
        rows.append(("Kind", account.kind))
    if credentials.temporary is not None:
        rows.append(("Claim URL", credentials.temporary.claim_url))
    if account.account_quarantine is not None:
        rows.append(("Quarantined", account_quarantine_line(account.account_quarantine, out)))
    for q in account.quarantined:
        rows.append(("Quarantined", quarantine_line(q, out)))
    if show_token:
        data["api_token"] = credentials.token
        rows.append(("API token", credentials.token))
    else:
        match = re.match(r"[a-z]{2,4}_", credentials.token)
        prefix = match.group() if match else ""
        rows.append(("API token", f"{prefix}… (hidden; --show-token prints it)"))
    return data, table(rows, indent="")


def _quarantine_left(q: QuarantineInfo | AccountQuarantineInfo, out: Output) -> int:
    return max(0, math.ceil((q.until - out.now()).total_seconds()))


def quarantine_json(q: QuarantineInfo, out: Output) -> dict[str, Any]:
    return {
        "script": q.script,
        "version_id": q.version_id,
        "kind": q.kind,
        "reason": q.reason,
        "until": format_time(q.until),
        "seconds_left": _quarantine_left(q, out),
    }


def quarantine_line(q: QuarantineInfo, out: Output) -> str:
    left = format_duration(_quarantine_left(q, out))
    return f"{q.script} until {format_time(q.until)} ({left} left): {q.reason}"


def account_quarantine_json(q: AccountQuarantineInfo, out: Output) -> dict[str, Any]:
    return {
        "scripts": list(q.scripts),
        "kind": q.kind,
        "reason": q.reason,
        "until": format_time(q.until),
        "seconds_left": _quarantine_left(q, out),
    }


def account_quarantine_line(q: AccountQuarantineInfo, out: Output) -> str:
    left = format_duration(_quarantine_left(q, out))
    return (
        f"the whole account until {format_time(q.until)} ({left} left): {q.reason}; "
        "no Worker is served or can be deployed"
    )
