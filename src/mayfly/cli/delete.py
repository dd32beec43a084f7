"""`mayfly delete`: remove a Worker, its versions, deployments and secrets (W21)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mayfly.cli.options import command_output, load_target, project_warnings, run_in_account
from mayfly.cli.versions import target_options


@click.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@target_options
def delete(
    yes: bool,
    name: str | None,
    config: Path | None,
    env_name: str | None,
    temporary: bool,
    api_token: str | None,
    api_url: str,
    as_json: bool,
) -> None:
    """Delete the Worker: its URL stops answering (404) at once.

    Asks for confirmation only on an interactive terminal (never with --json or --yes).
    KV namespaces are kept (delete them with `mayfly kv namespace delete`).

    \b
    --json prints: script, deleted (true).
    """
    out = command_output(as_json)
    with out.errors():
        target = load_target(name, config, env_name)
        project_warnings(out, target.project)
        if not (yes or as_json) and sys.stdin.isatty():
            click.confirm(
                f"Delete the Worker {target.name}? This cannot be undone.", abort=True, err=True
            )
        run_in_account(
            out,
            api_url,
            api_token,
            temporary,
            lambda a, acct: a.workers.delete(acct.id, target.name),
            account_id=target.account_id,
        )
        out.result({"script": target.name, "deleted": True}, [f"Deleted the Worker {target.name}."])
