"""`mayfly deploy`: upload the project's modules as a new version and make it live."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import click

from mayfly.cli.options import (
    api_options,
    check_temporary,
    client_env,
    temporary_option,
    token_option,
    worker_options,
)
from mayfly.cli.output import CommandFailed, Output, format_duration, format_seconds, table
from mayfly.cli.whoami import account_quarantine_json, quarantine_json
from mayfly.project import (
    DevVars,
    ModuleSet,
    Project,
    build_manifest,
    build_modules,
    bundle_with_esbuild,
    load_project,
    read_dev_vars,
)
from mayfly.project.upload import deploy_options
from mayfly.project.upload import worker_upload as project_upload
from mayfly.sdk import (
    Credentials,
    Deployer,
    Deployment,
    MayflyAPIError,
    MayflyClient,
    SDKError,
    TemporaryAccountCache,
    WorkerUpload,
    resolve_credentials,
)
from mayfly.sdk.errors import SUSPENDED
from mayfly.sdk.models import format_time


@click.command()
@click.argument("entry", required=False, type=click.Path(dir_okay=False))
@worker_options
@temporary_option
@click.option(
    "--event",
    "event_code",
    help="With --temporary: an event code from the organiser; the new account counts against "
    "the event's budget instead of this address's limit and lives for the event's TTL.",
)
@click.option("--message", help="A note stored with the version (shown by `versions list`).")
@click.option(
    "--dev-vars",
    "use_dev_vars",
    is_flag=True,
    help="Upload the entries of .dev.vars (or .dev.vars.<env> with --env) as secrets. Without "
    "it, a .dev.vars file is not uploaded and a notice says so.",
)
@token_option
@api_options
def deploy(
    entry: str | None,
    name: str | None,
    config: Path | None,
    env_name: str | None,
    temporary: bool,
    event_code: str | None,
    message: str | None,
    use_dev_vars: bool,
    api_token: str | None,
    api_url: str,
    as_json: bool,
) -> None:
    """Deploy the Worker in this directory.

    Reads wrangler.toml, wrangler.json or wrangler.jsonc: name, main, compatibility_date,
    compatibility_flags, vars, kv_namespaces, assets, and [env.NAME] sections with --env (as in
    wrangler, vars and kv_namespaces are not inherited by an environment; main and
    compatibility_date are). Uploads ENTRY (default: `main`) and every module it imports through
    relative paths, stores a version and makes it live.

    TypeScript/JSX entries and imports of npm packages are bundled with esbuild into one ES
    module (plus its source map and any imported .wasm files, as wrangler uploads them; with
    nodejs_compat, Node's built-ins are left to the runtime); plain JavaScript modules are
    uploaded as they are.

    A KV binding without an id gets a namespace titled <worker>-<binding lowercased>, created on
    the first deploy and reused afterwards. Static assets ([assets] directory, .assetsignore,
    _redirects, _headers) are uploaded when new or changed, never twice.

    Without credentials, add --temporary: no account is needed, and the output has the Worker's
    URL and a claim URL a human can open to keep the account (it is deleted when it expires).

    \b
    --json prints: url, version_id, script, account_id, account_name,
      claim_url, expires_at and created_or_reused ("created" | "reused")
      for a temporary account (else null), api_token (only when the
      account was just created), bundled ({tool, inputs} or null),
      kv_namespaces ([{binding, id, title, state: "configured" |
      "existing" | "created"}]), assets ({files, uploaded,
      already_uploaded} or null), dev_vars ({file, uploaded, names} or
      null; never the values), messages, notices, timings_ms. A deploy to a
      quarantined Worker fails with code 10060 and the error has
      quarantine ({script, version_id, kind, reason, until, seconds_left});
      a deploy into a quarantined account (any Worker name) fails with
      code 10060 and the error has account_quarantine ({scripts, kind,
      reason, until, seconds_left}).
      When a human claimed the cached temporary account, the deploy fails
      with code 10002 (nothing is provisioned over it) and the error has
      claimed ({account_id, account_name, claimed_at,
      new_temporary_account: false, get_access: {login, dashboard_token,
      env}}).
    """
    env = client_env()
    out = Output(as_json, env.now)
    with out.errors():
        resolution = resolve_credentials(
            api_url, now=env.now(), flag_token=api_token, directory=env.config_dir()
        )
        credentials = resolution.credentials
        check_temporary(credentials.source if credentials else None, temporary)
        if event_code and not temporary:
            raise click.UsageError("--event applies to a new temporary account: add --temporary.")
        project = load_project(Path.cwd(), config=config, name=name, main=entry, env=env_name)
        for warning in project.warnings:
            out.warn(warning)
        modules = _modules(project, out)
        manifest = build_manifest(project)
        dev_vars = read_dev_vars(project)
        upload = worker_upload(project, modules, dev_vars if use_dev_vars else None, out)
        if message:
            upload = dataclasses.replace(upload, annotations={"workers/message": message})
        if dev_vars is not None and not use_dev_vars:
            out.notice(
                f"{dev_vars.path.name} was not uploaded ({len(dev_vars.values)} entries): it is "
                "for local development. Pass --dev-vars to upload its entries as secrets."
            )
        elif dev_vars is None and use_dev_vars:
            out.warn(f"--dev-vars: there is no .dev.vars file in {project.root}.")
        started = time.perf_counter()
        with env.client(api_url) as client:
            deployer = Deployer(client, TemporaryAccountCache(env.config_dir()), out, env.now)
            try:
                deployment = deployer.deploy(
                    project.name,
                    upload,
                    resolution,
                    temporary=temporary,
                    event_code=event_code,
                    **deploy_options(project, manifest),
                )
            except MayflyAPIError as exc:
                if exc.code != SUSPENDED or credentials is None:
                    raise
                found = quarantine_of(client, credentials, project, out)
                raise CommandFailed(exc.code, exc.message, details=found) from exc
        elapsed = time.perf_counter() - started
        for line in deployment.messages:
            out.warn(line)
        data = deployment_json(deployment, deployer.timings.milliseconds())
        data["bundled"] = (
            {"tool": modules.bundler, "inputs": list(modules.inputs)}
            if modules is not None and modules.bundler
            else None
        )
        data["dev_vars"] = (
            {
                "file": str(dev_vars.path),
                "uploaded": use_dev_vars,
                "names": sorted(dev_vars.values),
            }
            if dev_vars is not None
            else None
        )
        out.result(data, deployment_lines(deployment, out, elapsed))


def _modules(project: Project, out: Output) -> ModuleSet | None:
    if project.main is None:
        return None  # an assets-only Worker

    def bundler(project: Project) -> ModuleSet:
        task = f"Bundling {project.main} with esbuild"
        out.begin(task)
        started = time.perf_counter()
        bundled = bundle_with_esbuild(project)
        out.end(task, time.perf_counter() - started)
        return bundled

    modules = build_modules(project, bundler)
    for diagnostic in modules.diagnostics:
        out.warn(diagnostic.message)
    return modules


def worker_upload(
    project: Project,
    modules: ModuleSet | None,
    dev_vars: DevVars | None = None,
    out: Output | None = None,
) -> WorkerUpload:
    bindings = project.bindings()
    if dev_vars is not None:
        overridden = [b["name"] for b in bindings if b["name"] in dev_vars.values]
        if overridden and out is not None:
            out.notice(
                f"{dev_vars.path.name} overrides the var(s) {', '.join(overridden)} with secrets."
            )
        bindings = [b for b in bindings if b["name"] not in dev_vars.values]
        bindings += [
            {"name": key, "type": "secret_text", "text": value}
            for key, value in dev_vars.values.items()
        ]
    return project_upload(project, modules, bindings)


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
    data["kv_namespaces"] = [
        {"binding": n.binding, "id": n.id, "title": n.title, "state": n.state}
        for n in deployment.kv_namespaces
    ]
    assets = deployment.assets
    data["assets"] = (
        {
            "files": assets.files,
            "uploaded": assets.uploaded,
            "already_uploaded": assets.already_uploaded,
        }
        if assets is not None
        else None
    )
    data["crons"] = list(deployment.crons) if deployment.crons is not None else None
    data["messages"] = list(deployment.messages)
    data["notices"] = list(deployment.notices)
    data["timings_ms"] = timings
    return data


def deployment_lines(deployment: Deployment, out: Output, elapsed: float) -> list[str]:
    short = deployment.version_id.split("-")[0]
    lines = [f"Deployed {deployment.script} (version {short}) in {format_seconds(elapsed)}"]
    rows = [("URL", deployment.url or "(no URL: the Worker is not enabled on its subdomain)")]
    for namespace in deployment.kv_namespaces:
        state = {"configured": "", "existing": ", reused", "created": ", created"}[namespace.state]
        title = f"{namespace.title}, " if namespace.title else ""
        rows.append((f"KV {namespace.binding}", f"{title}{namespace.id}{state}"))
    if deployment.assets is not None:
        assets = deployment.assets
        rows.append(
            (
                "Assets",
                f"{assets.files} files ({assets.uploaded} uploaded, "
                f"{assets.already_uploaded} already there)",
            )
        )
    if deployment.crons is not None:
        rows.append(("Cron triggers", ", ".join(deployment.crons) or "none"))
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


def quarantine_of(
    client: MayflyClient, credentials: Credentials, project: Project, out: Output
) -> dict[str, Any]:
    """`{"quarantine": …}` for the JSON error of a deploy refused because the Worker is
    quarantined (which version, until when, why), `{"account_quarantine": …}` when the whole
    account is (which Workers, until when); empty if the account does not say."""
    try:
        account = Deployer.account_for(
            client.with_token(credentials.token), credentials, project.account_id
        )
        if credentials.temporary is not None:
            account = client.with_token(credentials.token).get_account(account.id)
    except SDKError:
        return {}
    if account.account_quarantine is not None:
        return {"account_quarantine": account_quarantine_json(account.account_quarantine, out)}
    for q in account.quarantined:
        if q.script == project.name:
            return {"quarantine": quarantine_json(q, out)}
    return {}
