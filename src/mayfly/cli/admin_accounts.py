"""`mayfly admin account list|show|suspend|resume|delete`: what an operator does to accounts.

They act on the database directly (found like `mayfly serve` finds it); a running server's shards
notice a suspension, a resumption or a deletion within their route cache's lifetime (seconds).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import sqlalchemy
import sqlalchemy.exc

from mayfly.cli.serve import settings_options
from mayfly.errors import MayflyError
from mayfly.settings import Settings, load_settings

T = TypeVar("T")


def warn_if_new_database(settings: Settings) -> None:
    if database_exists(settings.database_url):
        return
    click.echo(
        click.style("Warning:", fg="yellow", bold=True)
        + f" no Mayfly database at {shown_url(settings.database_url)}; creating a new one. "
        "`mayfly serve` finds its database with --data-dir / MAYFLY_DATA_DIR (default: .mayfly "
        "in its working directory) and --database-url / MAYFLY_DATABASE_URL: give this command "
        "the same, or what it creates (accounts, tokens) is not the server's.",
        err=True,
    )


def database_exists(url: str) -> bool:
    """Whether `url` names a database Mayfly already set up (its migrations ran there)."""
    from mayfly.storage.database import Database

    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[-1])
        if not path.exists():
            return False
    db = Database(url)
    try:
        return sqlalchemy.inspect(db.engine).has_table("alembic_version")
    except sqlalchemy.exc.SQLAlchemyError:
        return True  # unreachable: Platform.create says why, better than a guess here
    finally:
        db.dispose()


def shown_url(url: str) -> str:
    """The database's path or URL, without a password."""
    if url.startswith("sqlite"):
        return url.split(":///", 1)[-1]
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def operator_platform(flags: dict[str, Any]) -> Any:
    """The platform over the server's database, or a clean error saying why not. The database is
    found as `mayfly serve` finds it (the same flags and MAYFLY_* variables); a warning says so
    when there is none there yet, since a new one would hold accounts the server never sees."""
    from mayfly.app import Platform
    from mayfly.services.operations.platform_key import PlatformKeyError

    try:
        settings = load_settings(flags)
        warn_if_new_database(settings)
        return Platform.create(settings)
    except (ValueError, KeyError) as exc:
        raise click.UsageError(str(exc)) from exc
    except PlatformKeyError as exc:
        raise click.ClickException(str(exc)) from exc


def _admin(flags: dict[str, Any]) -> Any:
    from mayfly.services.operations.account_admin import AccountAdmin

    return AccountAdmin(operator_platform(flags).services.ctx)


def invalidate_hosts(ctx: Any, hosts: list[str]) -> None:
    """With PostgreSQL, running servers' data-plane nodes drop these routes before the command
    returns (as for a change through the API); with SQLite they notice within their route cache's
    lifetime."""
    db = ctx.db
    if db.is_sqlite or not hosts:
        return
    import asyncio

    from mayfly.services.operations.cluster import invalidate_from_outside

    asyncio.run(invalidate_from_outside(db, hosts, ctx.settings.ack_timeout))


def admin_failure(exc: MayflyError, as_json: bool) -> NoReturn:
    """How an admin command fails: the error object with --json, else click's `Error: …`."""
    if as_json:
        click.echo(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
        raise SystemExit(1) from exc
    raise click.ClickException(exc.message) from exc


def admin_run(as_json: bool, action: Callable[[], T]) -> T:
    """`action()`; a MayflyError it raises fails the command (admin_failure)."""
    try:
        return action()
    except MayflyError as exc:
        admin_failure(exc, as_json)


@click.command("list")
@click.option("--kind", type=click.Choice(["temporary", "permanent"]), help="Only this kind.")
@click.option("--suspended", is_flag=True, help="Only suspended accounts.")
@click.option("--limit", type=int, default=1000, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def account_list(
    kind: str | None, suspended: bool, limit: int, as_json: bool, **flags: Any
) -> None:
    """List accounts, oldest first.

    \b
    --json prints: accounts ([{id, name, kind, created_at, expires_at,
      claimed_at, suspended_at, owner_email, workers}]).
    """
    found = _admin(flags).list_accounts(kind=kind, suspended=suspended, limit=limit)
    if as_json:
        click.echo(json.dumps({"accounts": [a.to_json() for a in found]}))
        return
    if not found:
        click.echo("No account.")
        return
    for a in found:
        account = a.account
        state = " SUSPENDED" if account.suspended_at else ""
        until = f", expires {a.to_json()['expires_at']}" if account.expires_at else ""
        owner = f", owner {a.owner_email}" if a.owner_email else ""
        click.echo(
            f"{account.name}  {account.id}  {account.kind}, {a.workers} Workers{until}{owner}{state}"
        )


@click.command("show")
@click.argument("account")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def account_show(account: str, as_json: bool, **flags: Any) -> None:
    """Show ACCOUNT (a name or an id): its state, Workers, tokens and KV namespaces.

    \b
    --json prints: account ({id, name, kind, created_at, expires_at, claimed_at,
      suspended_at, owner_email, workers, scripts [{name, url}], active_tokens,
      kv_namespaces}).
    """
    admin = _admin(flags)
    shown = admin_run(as_json, lambda: admin.show(account))
    if as_json:
        click.echo(json.dumps({"account": shown}))
        return
    for key, value in shown.items():
        if key != "scripts":
            click.echo(f"{key:13} {value if value is not None else '-'}")
    for script in shown["scripts"]:
        click.echo(f"  {script['name']}  {script['url']}")


def _set_suspended(account: str, suspended: bool, reason: str, as_json: bool, flags: Any) -> None:
    admin = _admin(flags)
    summary, hosts = admin_run(
        as_json, lambda: admin.set_suspended(account, suspended, actor="operator", reason=reason)
    )
    invalidate_hosts(admin.ctx, hosts)
    if as_json:
        click.echo(json.dumps({"account": summary.to_json(), "hosts": hosts}))
        return
    if suspended:
        click.echo(
            f"Suspended {summary.account.name}: its {len(hosts)} Workers answer 503 and its tokens "
            "cannot change anything."
        )
    else:
        click.echo(f"Resumed {summary.account.name}: its {len(hosts)} Workers serve again.")


@click.command("suspend")
@click.argument("account")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def account_suspend(account: str, reason: str, as_json: bool, **flags: Any) -> None:
    """Suspend ACCOUNT (a name or an id): its Workers answer 503 (10060) and its tokens can read
    but not write, until `mayfly admin account resume`.

    \b
    --json prints: account ({…as list}), hosts ([host of each Worker]).
    """
    _set_suspended(account, True, reason, as_json, flags)


@click.command("resume")
@click.argument("account")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def account_resume(account: str, as_json: bool, **flags: Any) -> None:
    """Undo a suspension of ACCOUNT (a name or an id).

    \b
    --json prints: account ({…as list}), hosts ([host of each Worker]).
    """
    _set_suspended(account, False, "", as_json, flags)


@click.command("delete")
@click.argument("account")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def account_delete(account: str, yes: bool, as_json: bool, **flags: Any) -> None:
    """Delete ACCOUNT (a name or an id) and everything it holds, as the reaper deletes an expired
    one; its name stays taken for the tombstone cooldown.

    \b
    --json prints: deleted ({name, hosts}).
    """
    if not yes and not as_json:
        click.confirm(f"Delete account {account} and all its Workers and data?", abort=True)
    admin = _admin(flags)
    name, hosts = admin_run(as_json, lambda: admin.delete(account, actor="operator"))
    invalidate_hosts(admin.ctx, hosts)
    if as_json:
        click.echo(json.dumps({"deleted": {"name": name, "hosts": hosts}}))
        return
    click.echo(f"Deleted {name} and its {len(hosts)} Workers.")


ACCOUNT_COMMANDS = (account_list, account_show, account_suspend, account_resume, account_delete)
