"""`mayfly r2 bucket create|list|delete`: R2 buckets over the API (docs/r2.md)."""

from __future__ import annotations

from typing import Any

import click

from mayfly.cli.options import ApiArgs, account_options
from mayfly.sdk import AccountInfo, MayflyClient


@click.group()
def r2() -> None:
    """R2 buckets (objects: through a binding, or `wrangler r2 object`)."""


@r2.group()
def bucket() -> None:
    """Create, list and delete R2 buckets."""


def _buckets(account: AccountInfo) -> str:
    return f"/accounts/{account.id}/r2/buckets"


@bucket.command("create")
@click.argument("name")
@account_options
def bucket_create(name: str, api: ApiArgs) -> None:
    """Create the bucket NAME (3-63 lowercase letters, digits and hyphens; 10004 if it exists).

    \b
    --json prints: name, creation_date, location, storage_class.
    """
    out = api.output()
    with out.errors():

        def action(client: MayflyClient, account: AccountInfo) -> Any:
            return client.call("POST", _buckets(account), json={"name": name})

        created = api.run(out, action).value
        out.result(
            created,
            [
                f"Created R2 bucket {created['name']}. To bind it, add to wrangler.toml:",
                "",
                "[[r2_buckets]]",
                'binding = "BUCKET"',
                f'bucket_name = "{created["name"]}"',
            ],
        )


@bucket.command("list")
@account_options
def bucket_list(api: ApiArgs) -> None:
    """List the account's buckets, by name.

    \b
    --json prints an array of {name, creation_date, location, storage_class}.
    """
    out = api.output()
    with out.errors():

        def action(client: MayflyClient, account: AccountInfo) -> Any:
            return client.call("GET", _buckets(account))["buckets"]

        found: list[dict[str, Any]] = api.run(out, action).value
        width = max((len(b["name"]) for b in found), default=0)
        out.result(
            found,
            [f"{b['name'].ljust(width)}  {b['creation_date']}" for b in found]
            or ["No R2 buckets in this account."],
        )


@bucket.command("delete")
@click.argument("name")
@account_options
def bucket_delete(name: str, api: ApiArgs) -> None:
    """Delete the bucket NAME; it must be empty (10008 while it holds objects).

    \b
    --json prints: name, deleted.
    """
    out = api.output()
    with out.errors():

        def action(client: MayflyClient, account: AccountInfo) -> None:
            client.call("DELETE", f"{_buckets(account)}/{name}")

        api.run(out, action)
        out.result({"name": name, "deleted": True}, [f"Deleted R2 bucket {name}."])
