"""`mayfly admin taint list|clear`: client addresses whose temporary accounts' Workers were
quarantined (services/temporary/taints.py): their new accounts cost the maximum proof of work and
fewer are allowed, until the taint ends or an operator clears it."""

from __future__ import annotations

import json
from typing import Any

import click

from mayfly.cli.admin_accounts import admin_run, operator_platform
from mayfly.cli.serve import settings_options


@click.group("taint")
def taint_group() -> None:
    """Client addresses tainted because a Worker of a temporary account provisioned from them
    was quarantined."""


@taint_group.command("list")
@click.option("--all", "include_ended", is_flag=True, help="Also list taints cleared or ended.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def taint_list(include_ended: bool, as_json: bool, **flags: Any) -> None:
    """List tainted addresses (IPv6: by /64): which account's Worker, until when.

    \b
    --json prints: taints ([{address, account_id, script, kind, tainted_at,
      until, seconds_left, cleared_at, cleared_by}]: one per verdict, the
      latest end first).
    """
    platform = operator_platform(flags)
    now = platform.services.ctx.clock.now()
    found = platform.services.provisioning.taints.list_all(include_ended=include_ended)
    items = [t.to_json(now) for t in found]
    if as_json:
        click.echo(json.dumps({"taints": items}))
        return
    if not items:
        click.echo("No address is tainted." if not include_ended else "No taint yet.")
        return
    for item in items:
        state = (
            f"cleared by {item['cleared_by']}"
            if item["cleared_by"]
            else f"until {item['until']} ({item['seconds_left']} s left)"
        )
        click.echo(
            f"{item['address']}  {state}: Worker {item['script']} of account "
            f"{item['account_id']} was quarantined ({item['kind']}) at {item['tainted_at']}"
        )


@taint_group.command("clear")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def taint_clear(address: str, as_json: bool, **flags: Any) -> None:
    """End the taint of ADDRESS (an IPv4 address, or an IPv6 address or /64) now: its new
    temporary accounts cost the usual proof of work and allowance again. Audited on each account
    whose Worker tainted it.

    \b
    --json prints: cleared ({address, taints}).
    """
    platform = operator_platform(flags)
    taints = platform.services.provisioning.taints
    cleared = admin_run(as_json, lambda: taints.clear(address, actor="operator"))
    group = cleared[0].address
    if as_json:
        click.echo(json.dumps({"cleared": {"address": group, "taints": len(cleared)}}))
        return
    click.echo(f"Cleared the taint of {group} ({len(cleared)} verdict(s)).")
