"""`mayfly secret put|list|delete`: a Worker's secrets (W2, W14, W15). Values are never printed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mayfly.cli.options import (
    api_options,
    command_output,
    load_target,
    project_warnings,
    run_in_account,
    temporary_option,
    token_option,
    worker_options,
)
from mayfly.cli.output import Output
from mayfly.sdk import AccountInfo, MayflyAPIError, MayflyClient
from mayfly.sdk.errors import SCRIPT_NOT_FOUND

F = TypeVar("F", bound=Callable[..., Any])


def secret_options(func: F) -> F:
    return worker_options(temporary_option(token_option(api_options(func))))


@click.group()
def secret() -> None:
    """A Worker's secrets: encrypted at rest, visible to the Worker as env.NAME."""


def read_value(value: str | None) -> str:
    """--value, else standard input: a prompt on a terminal, else everything piped in minus one
    trailing newline."""
    if value is not None:
        return value
    if sys.stdin.isatty():
        entered: str = click.prompt("Secret value", hide_input=True, err=True)
        return entered
    text = sys.stdin.read()
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


@secret.command("put")
@click.argument("secret_name", metavar="NAME")
@click.option(
    "--value",
    help="The value (default: read from standard input; agents may prefer this option, but it "
    "shows in the process list).",
)
@secret_options
def put(
    secret_name: str,
    value: str | None,
    name: str | None,
    config: Path | None,
    env_name: str | None,
    temporary: bool,
    api_token: str | None,
    api_url: str,
    as_json: bool,
) -> None:
    """Set the secret NAME on the Worker: a new version, deployed at once.

    The value comes from standard input (one trailing newline removed) or --value. If the Worker
    does not exist yet, a draft Worker is created to hold the secret (as wrangler does); deploy
    its code with `mayfly deploy`. Secrets survive later deploys.

    \b
    --json prints: script, name, created_worker.
    """
    out = command_output(as_json)
    with out.errors():
        target = load_target(name, config, env_name)
        project_warnings(out, target.project)
        text = read_value(value)

        def action(authed: MayflyClient, account: AccountInfo) -> bool:
            return put_secret(authed, account, target.name, secret_name, text, out)

        ran = run_in_account(
            out, api_url, api_token, temporary, action, account_id=target.account_id
        )
        out.result(
            {"script": target.name, "name": secret_name, "created_worker": ran.value},
            [f"Secret {secret_name} set on {target.name} (a new version is live)."],
        )


def put_secret(
    authed: MayflyClient, account: AccountInfo, script: str, name: str, value: str, out: Output
) -> bool:
    """Put the secret; True when a draft Worker had to be created for it."""
    try:
        authed.workers.put_secret(account.id, script, name, value)
        return False
    except MayflyAPIError as exc:
        if exc.code != SCRIPT_NOT_FOUND:
            raise
    out.notice(
        f"There is no Worker named {script}: creating a draft Worker to hold the secret "
        "(deploy its code with `mayfly deploy`)."
    )
    authed.workers.create_draft(account.id, script)
    authed.workers.put_secret(account.id, script, name, value)
    return True


@secret.command("list")
@secret_options
def list_(
    name: str | None,
    config: Path | None,
    env_name: str | None,
    temporary: bool,
    api_token: str | None,
    api_url: str,
    as_json: bool,
) -> None:
    """List the Worker's secrets (names only).

    \b
    --json prints an array of {name, type}.
    """
    out = command_output(as_json)
    with out.errors():
        target = load_target(name, config, env_name)
        project_warnings(out, target.project)
        ran = run_in_account(
            out,
            api_url,
            api_token,
            temporary,
            lambda a, acct: a.workers.list_secrets(acct.id, target.name),
            account_id=target.account_id,
        )
        out.result(
            [{"name": s.name, "type": s.type} for s in ran.value],
            [s.name for s in ran.value] or [f"{target.name} has no secrets."],
        )


@secret.command("delete")
@click.argument("secret_name", metavar="NAME")
@secret_options
def delete(
    secret_name: str,
    name: str | None,
    config: Path | None,
    env_name: str | None,
    temporary: bool,
    api_token: str | None,
    api_url: str,
    as_json: bool,
) -> None:
    """Delete the secret NAME from the Worker (a new version without it goes live).

    \b
    --json prints: script, name, deleted (true).
    """
    out = command_output(as_json)
    with out.errors():
        target = load_target(name, config, env_name)
        project_warnings(out, target.project)
        run_in_account(
            out,
            api_url,
            api_token,
            temporary,
            lambda a, acct: a.workers.delete_secret(acct.id, target.name, secret_name),
            account_id=target.account_id,
        )
        out.result(
            {"script": target.name, "name": secret_name, "deleted": True},
            [f"Secret {secret_name} deleted from {target.name}."],
        )
