"""`mayfly admin …`: operator commands that act on the database directly."""

from __future__ import annotations

import json
from typing import Any

import click

from mayfly.cli.serve import settings_options
from mayfly.errors import MayflyError
from mayfly.settings import load_settings


@click.group()
def admin() -> None:
    """Operator commands (run on the server, against its data dir or database)."""


@admin.group()
def account() -> None:
    """Manage accounts."""


@account.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def create(name: str, as_json: bool, **flags: Any) -> None:
    """Create a permanent account NAME and print its mfp_ API token (shown once)."""
    from mayfly.app import Platform

    platform = Platform.create(load_settings(flags))
    try:
        created, token = platform.services.accounts.create_permanent(name)
    except MayflyError as exc:
        if as_json:
            click.echo(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
            raise SystemExit(1) from exc
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(json.dumps({"account_id": created.id, "name": created.name, "api_token": token}))
        return
    click.echo(f"Account {created.name} created (id {created.id}).")
    click.echo(f"API token (shown once): {token}")
    click.echo(
        f"Use it:  CLOUDFLARE_API_TOKEN={token} CLOUDFLARE_ACCOUNT_ID={created.id} wrangler deploy"
    )
