"""`mayfly deployments list|status` and `mayfly rollback`: which version is live (W6, W11, W17)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from mayfly.cli.options import ApiArgs, WorkerArgs, worker_account_options
from mayfly.cli.output import CommandFailed
from mayfly.cli.versions import describe_source, version_json, version_lines
from mayfly.sdk import AccountInfo, MayflyClient, WorkerDeployment, WorkerVersion


def deployment_json(deployment: WorkerDeployment) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "created_on": deployment.created_on,
        "author_email": deployment.author_email,
        "source": describe_source(deployment.annotations, deployment.source),
        "message": deployment.message,
        "annotations": deployment.annotations,
        "versions": [{"version_id": v, "percentage": p} for v, p in deployment.versions],
    }


def deployment_lines(deployment: WorkerDeployment) -> list[str]:
    lines = [
        f"{'Created:':<13}{deployment.created_on or '-'}",
        f"{'Author:':<13}{deployment.author_email or '-'}",
        f"{'Source:':<13}{describe_source(deployment.annotations, deployment.source)}",
        f"{'Message:':<13}{deployment.message or '-'}",
    ]
    for version_id, percentage in deployment.versions:
        lines.append(f"{'Version(s):':<13}({percentage}%) {version_id}")
    return lines


def newest_first(deployments: list[WorkerDeployment]) -> list[WorkerDeployment]:
    # created_on is one fixed ISO-8601 format, so the strings sort like the times (spec §3.5).
    return sorted(deployments, key=lambda d: d.created_on or "", reverse=True)


@click.group()
def deployments() -> None:
    """A Worker's deployments: each made one version live."""


@deployments.command("list")
@worker_account_options
def list_(worker: WorkerArgs, api: ApiArgs) -> None:
    """List the Worker's deployments, newest (the live one) first.

    \b
    --json prints an array of {id, created_on, author_email, source,
      message, annotations, versions: [{version_id, percentage}]}.
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)
        ran = api.run(
            out,
            lambda a, acct: newest_first(a.workers.list_deployments(acct.id, target.name)),
            account_id=target.account_id,
        )
        lines: list[str] = []
        for deployment in ran.value:
            lines += [*deployment_lines(deployment), ""]
        out.result([deployment_json(d) for d in ran.value], lines[:-1])


@dataclass(frozen=True)
class Status:
    deployment: WorkerDeployment
    version: WorkerVersion | None


@deployments.command("status")
@worker_account_options
def status(worker: WorkerArgs, api: ApiArgs) -> None:
    """Show the live deployment and its version.

    \b
    --json prints the deployment (as in `deployments list`) with
      version: the live version (as in `versions view`).
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)

        def action(authed: MayflyClient, account: AccountInfo) -> Status:
            found = newest_first(authed.workers.list_deployments(account.id, target.name))
            if not found:
                raise CommandFailed("no_deployment", f"{target.name} has never been deployed.")
            live = found[0].version_id
            version = authed.workers.get_version(account.id, target.name, live) if live else None
            return Status(found[0], version)

        ran = api.run(out, action, account_id=target.account_id)
        data = deployment_json(ran.value.deployment)
        data["version"] = (
            version_json(ran.value.version, detail=True) if ran.value.version else None
        )
        lines = deployment_lines(ran.value.deployment)
        if ran.value.version is not None:
            lines += ["", *version_lines(ran.value.version, indent="  ")]
        out.result(data, lines)


@dataclass(frozen=True)
class Rolled:
    version_id: str
    previous_version_id: str | None
    deployment_id: str | None


def pick_rollback_target(found: list[WorkerDeployment]) -> str | None:
    """wrangler's choice: the 100% version of the most recent deployment before the live one
    (skipping any that deployed the live version again)."""
    ordered = newest_first(found)
    live = ordered[0].version_id if ordered else None
    for deployment in ordered[1:]:
        candidate = deployment.version_id
        if candidate is not None and candidate != live:
            return candidate
    return None


@click.command()
@click.argument("version_id", required=False)
@click.option("--message", help="A note stored with the rollback deployment.")
@worker_account_options
def rollback(version_id: str | None, message: str | None, worker: WorkerArgs, api: ApiArgs) -> None:
    """Make an earlier version live again (a new deployment of it).

    Without VERSION_ID: the version of the deployment before the live one, as wrangler picks it.
    Bindings are those stored with that version (KV data itself is not rolled back).

    \b
    --json prints: script, version_id, previous_version_id, deployment_id,
      message.
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)

        def action(authed: MayflyClient, account: AccountInfo) -> Rolled:
            found = authed.workers.list_deployments(account.id, target.name)
            live = newest_first(found)[0].version_id if found else None
            chosen = version_id or pick_rollback_target(found)
            if chosen is None:
                raise CommandFailed(
                    "no_rollback_target",
                    f"{target.name} has no earlier deployment to roll back to; pass a "
                    "VERSION_ID (see `mayfly versions list`).",
                )
            authed.workers.get_version(account.id, target.name, chosen)  # exists? (else an error)
            annotations = {"workers/triggered_by": "rollback"}
            if message:
                annotations["workers/message"] = message
            made = authed.workers.deploy_version(account.id, target.name, chosen, annotations)
            return Rolled(chosen, live, made.id if made else None)

        ran = api.run(out, action, account_id=target.account_id)
        rolled = ran.value
        out.result(
            {
                "script": target.name,
                "version_id": rolled.version_id,
                "previous_version_id": rolled.previous_version_id,
                "deployment_id": rolled.deployment_id,
                "message": message,
            },
            [
                f"Rolled back {target.name}: version {rolled.version_id} is live "
                f"(was {rolled.previous_version_id or 'none'})."
            ],
        )
