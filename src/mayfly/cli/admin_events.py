"""`mayfly admin event create|list|end`: event codes for workshops behind one address.

An event's code lets `mayfly deploy --temporary --event CODE` (or `wrangler deploy --temporary
--event-code CODE`: the code travels as `eventCode` in the create-account body) provision
accounts that count against the event's budget instead of the per-address limits.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import click

from mayfly.cli.admin_accounts import admin_run, operator_platform
from mayfly.cli.serve import settings_options


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time", param_hint="--expires-at"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group("event")
def event_group() -> None:
    """Event codes: a budget of temporary accounts for a room behind one address."""


@event_group.command("create")
@click.argument("name")
@click.option(
    "--accounts", "accounts_max", type=int, required=True, help="Accounts it may provision."
)
@click.option("--ttl", type=int, required=True, help="Seconds each of its accounts lives.")
@click.option("--expires-at", help="ISO 8601 time after which the code provisions no accounts.")
@click.option("--organiser", help="E-mail of a user who sees and can end it on the dashboard.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def event_create(
    name: str,
    accounts_max: int,
    ttl: int,
    expires_at: str | None,
    organiser: str | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Create event NAME and print its code.

    \b
    --json prints: code, id, name, accounts, accounts_used, ttl, created_at,
      expires_at, ended_at, organiser, state.
    """
    platform = operator_platform(flags)
    events = platform.services.provisioning.events
    expires = _timestamp(expires_at)
    event = admin_run(
        as_json,
        lambda: events.create(
            name, accounts_max, ttl, expires_at=expires, organiser_email=organiser
        ),
    )
    data = event.to_json(platform.services.ctx.clock.now())
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"Event {event.name} created: code {event.code}")
    click.echo(f"  {event.accounts_max} accounts, each living {event.ttl} s.")
    click.echo(f"  Use it:  mayfly deploy --temporary --event {event.code}")


@event_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def event_list(as_json: bool, **flags: Any) -> None:
    """List events: code, accounts used of the budget, state.

    \b
    --json prints: events ([{code, id, name, accounts, accounts_used, ttl,
      created_at, expires_at, ended_at, organiser, state}]).
    """
    platform = operator_platform(flags)
    now = platform.services.ctx.clock.now()
    found = [e.to_json(now) for e in platform.services.provisioning.events.list_all()]
    if as_json:
        click.echo(json.dumps({"events": found}))
        return
    if not found:
        click.echo("No event yet.")
    for e in found:
        click.echo(
            f"{e['code']}  {e['name']}  {e['accounts_used']}/{e['accounts']} accounts, {e['state']}"
        )


@event_group.command("end")
@click.argument("event")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def event_end(event: str, as_json: bool, **flags: Any) -> None:
    """End EVENT (its code or id): no more accounts, and its unclaimed accounts expire now.

    Their Workers answer 410; the reaper deletes them as any expired account. Claimed accounts
    are their owners' and stay.

    \b
    --json prints: event ({code, id, name, ..., state}), expired_accounts.
    """
    platform = operator_platform(flags)
    ended, expired = admin_run(
        as_json, lambda: asyncio.run(platform.services.provisioning.events.end(event, "operator"))
    )
    data = {"event": ended.to_json(platform.services.ctx.clock.now()), "expired_accounts": expired}
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"Event {ended.name} ended; {expired} account(s) expired.")
