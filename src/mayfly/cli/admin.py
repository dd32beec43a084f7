"""`mayfly admin …`: operator commands that act on the database directly."""

from __future__ import annotations

import json
from typing import Any

import click

from mayfly.cli.admin_accounts import (
    ACCOUNT_COMMANDS,
    admin_run,
    invalidate_hosts,
    operator_platform,
)
from mayfly.cli.admin_backup import backup_command, restore_command
from mayfly.cli.admin_events import event_group
from mayfly.cli.admin_taints import taint_group
from mayfly.cli.serve import settings_options
from mayfly.model import iso_seconds as iso


@click.group()
def admin() -> None:
    """Operator commands (run on the server, against its data dir or database)."""


@admin.group()
def account() -> None:
    """Manage accounts."""


for _command in ACCOUNT_COMMANDS:
    account.add_command(_command)
admin.add_command(backup_command)
admin.add_command(restore_command)

admin.add_command(event_group)
admin.add_command(taint_group)


@account.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def create(name: str, as_json: bool, **flags: Any) -> None:
    """Create a permanent account NAME and print its mfp_ API token (shown once)."""
    platform = operator_platform(flags)
    created, token = admin_run(as_json, lambda: platform.services.accounts.create_permanent(name))
    if as_json:
        click.echo(json.dumps({"account_id": created.id, "name": created.name, "api_token": token}))
        return
    click.echo(f"Account {created.name} created (id {created.id}).")
    click.echo(f"API token (shown once): {token}")
    click.echo(
        f"Use it:  CLOUDFLARE_API_TOKEN={token} CLOUDFLARE_ACCOUNT_ID={created.id} wrangler deploy"
    )


@admin.group("quarantine")
def quarantine_group() -> None:
    """Workers quarantined because they took a data-plane shard down, and accounts quarantined
    because several of their Workers were."""


@quarantine_group.command("list")
@click.option("--all", "include_ended", is_flag=True, help="Also list quarantines that ended.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def quarantine_list(include_ended: bool, as_json: bool, **flags: Any) -> None:
    """List quarantined accounts and Workers: which, until when, why.

    \b
    --json prints: quarantined ([{account_id, account_name, script,
      version_id, kind, reason, detail, started_at, until, seconds_left,
      strikes, lifted_at, lifted_by}]), accounts ([{account_id,
      account_name, scripts, kind, reason, detail, started_at, until,
      seconds_left, strikes, lifted_at, lifted_by}]: whole accounts).
    """
    platform = operator_platform(flags)
    now = platform.services.ctx.clock.now()
    found = platform.services.quarantine.list_all(include_ended=include_ended)
    whole = [
        {
            "account_id": q.account_id,
            "account_name": account_name,
            **q.to_json(now),
            "lifted_at": iso(q.lifted_at) if q.lifted_at else None,
            "lifted_by": q.lifted_by,
        }
        for q, account_name in platform.services.quarantine.list_accounts(include_ended)
    ]
    items = [
        {
            "account_id": q.account_id,
            "account_name": account_name,
            **q.to_json(now),
            "lifted_at": iso(q.lifted_at) if q.lifted_at else None,
            "lifted_by": q.lifted_by,
        }
        for q, account_name in found
    ]
    if as_json:
        click.echo(json.dumps({"quarantined": items, "accounts": whole}))
        return
    if not items and not whole:
        click.echo("No Worker is quarantined." if not include_ended else "No quarantine yet.")
        return
    for item in whole:
        state = (
            f"lifted by {item['lifted_by']}"
            if item["lifted_by"]
            else f"until {item['until']} ({item['seconds_left']} s left)"
        )
        click.echo(f"{item['account_name']} (whole account)  {state}, strike {item['strikes']}")
        click.echo(f"  {item['reason']}: {item['detail']}")
    for item in items:
        state = (
            f"lifted by {item['lifted_by']}"
            if item["lifted_by"]
            else f"until {item['until']} ({item['seconds_left']} s left)"
        )
        click.echo(f"{item['account_name']}/{item['script']}  {state}, strike {item['strikes']}")
        click.echo(f"  {item['reason']}: {item['detail']}")


@quarantine_group.command("lift")
@click.argument("account")
@click.argument("script", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def quarantine_lift(account: str, script: str | None, as_json: bool, **flags: Any) -> None:
    """End the quarantine of Worker SCRIPT of ACCOUNT (a name or an id) now; without SCRIPT, the
    quarantine of the whole account (its Workers' own quarantines stay).

    Its strikes are forgiven: a next incident starts again from the shortest cooldown. With
    PostgreSQL every live data-plane node serves the Worker again before the command returns;
    with SQLite a running server's shards notice within their route cache's lifetime (seconds).

    \b
    --json prints: lifted ({script, host}), or for an account lifted
      ({account, hosts}).
    """
    platform = operator_platform(flags)
    if script is None:
        whole, hosts = admin_run(
            as_json, lambda: platform.services.quarantine.lift_account(account, actor="operator")
        )
        invalidate_hosts(platform.services.ctx, hosts)
        if as_json:
            click.echo(json.dumps({"lifted": {"account": whole.account_id, "hosts": hosts}}))
            return
        click.echo(
            f"Lifted the quarantine of account {account} and its {len(hosts)} Worker(s) "
            f"(it was until {iso(whole.until)})."
        )
        return
    lifted, host = admin_run(
        as_json, lambda: platform.services.quarantine.lift(account, script, actor="operator")
    )
    invalidate_hosts(platform.services.ctx, [host])
    if as_json:
        click.echo(json.dumps({"lifted": {"script": lifted.script, "host": host}}))
        return
    click.echo(f"Lifted the quarantine of {host} (it was until {iso(lifted.until)}).")
