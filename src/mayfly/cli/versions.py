"""`mayfly versions list|view`: a Worker's stored versions (W16, W17)."""

from __future__ import annotations

from typing import Any

import click

from mayfly.cli.options import ApiArgs, WorkerArgs, worker_account_options
from mayfly.sdk import WorkerVersion

SOURCES = {
    "upload": "Upload",
    "secret": "Secret Change",
    "rollback": "Rollback",
    "deployment": "Deployment",
}


def describe_source(annotations: dict[str, str], fallback: str | None) -> str:
    triggered = annotations.get("workers/triggered_by")
    if triggered:
        return SOURCES.get(triggered, triggered)
    return fallback or "-"


def version_json(version: WorkerVersion, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": version.id,
        "number": version.number,
        "created_on": version.created_on,
        "author_email": version.author_email,
        "source": describe_source(version.annotations, version.source),
        "message": version.message,
        "tag": version.tag,
        "annotations": version.annotations,
    }
    if detail:
        data["handlers"] = list(version.handlers)
        data["compatibility_date"] = version.compatibility_date
        data["compatibility_flags"] = list(version.compatibility_flags)
        data["bindings"] = [dict(b) for b in version.bindings]
    return data


def version_lines(version: WorkerVersion, indent: str = "") -> list[str]:
    rows = [
        ("Version ID:", version.id),
        ("Number:", str(version.number) if version.number is not None else "-"),
        ("Created:", version.created_on or "-"),
        ("Author:", version.author_email or "-"),
        ("Source:", describe_source(version.annotations, version.source)),
        ("Tag:", version.tag or "-"),
        ("Message:", version.message or "-"),
    ]
    return [f"{indent}{label:<13}{value}" for label, value in rows]


def binding_line(binding: dict[str, Any]) -> str:
    kind = binding.get("type")
    name = binding.get("name")
    if kind == "plain_text":
        return f"env.{name} ({binding.get('text')!r})  Environment Variable"
    if kind == "json":
        return f"env.{name} (JSON)  Environment Variable"
    if kind == "secret_text":
        return f"env.{name}  Secret"
    if kind == "kv_namespace":
        return f"env.{name} ({binding.get('namespace_id')})  KV Namespace"
    if kind == "assets":
        return f"env.{name}  Assets"
    return f"env.{name}  {kind}"


@click.group()
def versions() -> None:
    """A Worker's versions: every upload, secret change and draft is one."""


@versions.command("list")
@worker_account_options
def list_(worker: WorkerArgs, api: ApiArgs) -> None:
    """List the Worker's versions, newest first.

    \b
    --json prints an array of {id, number, created_on, author_email,
      source, message, tag, annotations}.
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)
        ran = api.run(
            out,
            lambda a, acct: a.workers.list_versions(acct.id, target.name),
            account_id=target.account_id,
        )
        lines: list[str] = []
        for version in ran.value:
            lines += [*version_lines(version), ""]
        out.result([version_json(v) for v in ran.value], lines[:-1])


@versions.command("view")
@click.argument("version_id")
@worker_account_options
def view(version_id: str, worker: WorkerArgs, api: ApiArgs) -> None:
    """Show one version: handlers, compatibility settings and bindings.

    \b
    --json prints: id, number, created_on, author_email, source, message,
      tag, annotations, handlers, compatibility_date, compatibility_flags,
      bindings (secrets by name only).
    """
    out = api.output()
    with out.errors():
        target = worker.load(out)
        ran = api.run(
            out,
            lambda a, acct: a.workers.get_version(acct.id, target.name, version_id),
            account_id=target.account_id,
        )
        version = ran.value
        lines = version_lines(version)
        lines += [
            "",
            f"{'Handlers:':<22}{', '.join(version.handlers) or '-'}",
            f"{'Compatibility Date:':<22}{version.compatibility_date or '-'}",
            f"{'Compatibility Flags:':<22}{', '.join(version.compatibility_flags) or '-'}",
        ]
        if version.bindings:
            lines += ["Bindings:", *(f"  {binding_line(b)}" for b in version.bindings)]
        else:
            lines.append("No bindings.")
        out.result(version_json(version, detail=True), lines)
