"""`mayfly delete`: remove a Worker, its versions, deployments and secrets (W21)."""

from __future__ import annotations

import sys

import click

from mayfly.cli.options import ApiArgs, WorkerArgs, worker_account_options


@click.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@worker_account_options
def delete(yes: bool, worker: WorkerArgs, api: ApiArgs) -> None:
    """Delete the Worker: its URL stops answering (404) at once.

    Asks for confirmation only on an interactive terminal (never with --json or --yes).
    KV namespaces are kept (delete them with `mayfly kv namespace delete`).

    \b
    --json prints: script, deleted (true).
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)
        if not (yes or api.as_json) and sys.stdin.isatty():
            click.confirm(
                f"Delete the Worker {target.name}? This cannot be undone.", abort=True, err=True
            )
        api.run(
            out,
            lambda a, acct: a.workers.delete(acct.id, target.name),
            account_id=target.account_id,
        )
        out.result({"script": target.name, "deleted": True}, [f"Deleted the Worker {target.name}."])
