"""`mayfly deploy`: upload the project's modules as a new version and make it live."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from mayfly.cli.options import api_options, client_env, token_option
from mayfly.cli.output import EXIT_USAGE, Output, format_duration, format_seconds, table
from mayfly.project import ModuleSet, Project, collect_modules, load_project
from mayfly.sdk import (
    Deployer,
    Deployment,
    TemporaryAccountCache,
    UploadModule,
    WorkerUpload,
    resolve_credentials,
)
from mayfly.sdk.deploy import TEMPORARY_CONFLICT
from mayfly.sdk.models import format_time


@click.command()
@click.argument("entry", required=False, type=click.Path(dir_okay=False))
@click.option("--name", help="The Worker's name (default: `name` from the configuration).")
@click.option(
    "-c",
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Configuration file (default: the nearest wrangler.json, wrangler.jsonc or "
    "wrangler.toml in this directory or a parent).",
)
@click.option(
    "--temporary",
    is_flag=True,
    help="Deploy into a temporary account: created on first use (a proof of work, no sign-up), "
    "then reused from the cache until it expires. Prints a claim URL for a human.",
)
@token_option
@api_options
def deploy(
    entry: str | None,
    name: str | None,
    config: Path | None,
    temporary: bool,
    api_token: str | None,
    api_url: str,
    as_json: bool,
) -> None:
    """Deploy the Worker in this directory.

    Reads wrangler.toml, wrangler.json or wrangler.jsonc (name, main, compatibility_date,
    compatibility_flags, vars), uploads ENTRY (default: `main`) and every module it imports
    through relative paths, stores a version and makes it live.

    Without credentials, add --temporary: no account is needed, and the output has the Worker's
    URL and a claim URL a human can open to keep the account (it is deleted when it expires).

    \b
    --json prints: url, version_id, script, account_id, account_name,
      claim_url, expires_at and created_or_reused ("created" | "reused")
      for a temporary account (else null), api_token (only when the
      account was just created), messages, notices, timings_ms.
    """
    env = client_env()
    out = Output(as_json, env.now)
    with out.errors():
        resolution = resolve_credentials(
            api_url, now=env.now(), flag_token=api_token, directory=env.config_dir()
        )
        credentials = resolution.credentials
        if temporary and credentials is not None and credentials.source != "temporary":
            message = TEMPORARY_CONFLICT.format(source=credentials.source)
            if as_json:
                out.fail("temporary_conflict", message, EXIT_USAGE)
            raise click.UsageError(message)
        project = load_project(Path.cwd(), config=config, name=name, main=entry)
        for warning in project.warnings:
            out.warn(warning)
        modules = collect_modules(project)
        for diagnostic in modules.diagnostics:
            out.warn(diagnostic.message)
        started = time.perf_counter()
        with env.client(api_url) as client:
            deployer = Deployer(client, TemporaryAccountCache(env.config_dir()), out, env.now)
            deployment = deployer.deploy(
                project.name,
                worker_upload(project, modules),
                resolution,
                temporary=temporary,
                account_id=project.account_id,
            )
        elapsed = time.perf_counter() - started
        for message in deployment.messages:
            out.warn(message)
        timings = deployer.timings.milliseconds()
        out.result(
            deployment_json(deployment, timings),
            deployment_lines(deployment, out, elapsed),
        )


def worker_upload(project: Project, modules: ModuleSet) -> WorkerUpload:
    return WorkerUpload(
        main_module=modules.main,
        modules=tuple(UploadModule(m.name, m.data, m.content_type) for m in modules.modules),
        compatibility_date=project.compatibility_date,
        compatibility_flags=project.compatibility_flags,
        bindings=tuple(project.bindings()),
    )


def deployment_json(deployment: Deployment, timings: dict[str, int]) -> dict[str, Any]:
    account = deployment.account
    temporary = deployment.temporary
    data: dict[str, Any] = {
        "script": deployment.script,
        "url": deployment.url,
        "version_id": deployment.version_id,
        "account_id": account.id,
        "account_name": account.name,
        "claim_url": temporary.claim_url if temporary else None,
        "expires_at": format_time(account.expires_at) if account.expires_at else None,
        "created_or_reused": None,
    }
    if temporary is not None:
        data["created_or_reused"] = "created" if deployment.created_account else "reused"
        if deployment.created_account:
            data["api_token"] = temporary.api_token
    data["messages"] = list(deployment.messages)
    data["notices"] = list(deployment.notices)
    data["timings_ms"] = timings
    return data


def deployment_lines(deployment: Deployment, out: Output, elapsed: float) -> list[str]:
    short = deployment.version_id.split("-")[0]
    lines = [f"Deployed {deployment.script} (version {short}) in {format_seconds(elapsed)}"]
    rows = [("URL", deployment.url or "(no URL: the Worker is not enabled on its subdomain)")]
    temporary = deployment.temporary
    if temporary is None:
        rows.append(("Account", f"{deployment.account.name} ({deployment.account.id})"))
    else:
        left = format_duration(temporary.seconds_left(out.now()))
        state = "created" if deployment.created_account else "reused"
        rows.append(("Account", f"{temporary.name} (temporary, {state}; expires in {left})"))
        rows.append(("Claim URL", temporary.claim_url))
        if deployment.created_account:
            rows.append(("API token", f"{temporary.api_token} (shown once; cached for reuse)"))
    return lines + table(rows)
