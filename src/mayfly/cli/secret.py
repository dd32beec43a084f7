"""`mayfly secret put|list|delete`: a Worker's secrets (W2, W14, W15). Values are never printed."""

from __future__ import annotations

import sys

import click

from mayfly.cli.options import ApiArgs, WorkerArgs, worker_account_options
from mayfly.cli.output import Output
from mayfly.sdk import AccountInfo, MayflyAPIError, MayflyClient
from mayfly.sdk.errors import SCRIPT_NOT_FOUND


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
@worker_account_options
def put(secret_name: str, value: str | None, worker: WorkerArgs, api: ApiArgs) -> None:
    """Set the secret NAME on the Worker: a new version, deployed at once.

    The value comes from standard input (one trailing newline removed) or --value. If the Worker
    does not exist yet, a draft Worker is created to hold the secret (as wrangler does); deploy
    its code with `mayfly deploy`. Secrets survive later deploys.

    \b
    --json prints: script, name, created_worker.
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)
        text = read_value(value)

        def action(authed: MayflyClient, account: AccountInfo) -> bool:
            return put_secret(authed, account, target.name, secret_name, text, out)

        ran = api.run(out, action, account_id=target.account_id)
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
@worker_account_options
def list_(worker: WorkerArgs, api: ApiArgs) -> None:
    """List the Worker's secrets (names only).

    \b
    --json prints an array of {name, type}.
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)
        ran = api.run(
            out,
            lambda a, acct: a.workers.list_secrets(acct.id, target.name),
            account_id=target.account_id,
        )
        out.result(
            [{"name": s.name, "type": s.type} for s in ran.value],
            [s.name for s in ran.value] or [f"{target.name} has no secrets."],
        )


@secret.command("delete")
@click.argument("secret_name", metavar="NAME")
@worker_account_options
def delete(secret_name: str, worker: WorkerArgs, api: ApiArgs) -> None:
    """Delete the secret NAME from the Worker (a new version without it goes live).

    \b
    --json prints: script, name, deleted (true).
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)
        api.run(
            out,
            lambda a, acct: a.workers.delete_secret(acct.id, target.name, secret_name),
            account_id=target.account_id,
        )
        out.result(
            {"script": target.name, "name": secret_name, "deleted": True},
            [f"Secret {secret_name} deleted from {target.name}."],
        )
