"""`mayfly kv namespace …` and `mayfly kv key …`: Workers KV over the API (K1–K7)."""

from __future__ import annotations

import base64
import functools
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import click

from mayfly.cli.options import ApiArgs, account_options, load_target, project_warnings
from mayfly.cli.output import EXIT_USAGE, CommandFailed, Output
from mayfly.sdk import (
    AccountInfo,
    KVKey,
    MayflyAPIError,
    MayflyClient,
    namespace_title,
)
from mayfly.sdk.errors import SCRIPT_NOT_FOUND

IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


@click.group()
def kv() -> None:
    """Workers KV: namespaces and the values in them."""


@kv.group()
def namespace() -> None:
    """Create, list and delete KV namespaces."""


@kv.group()
def key() -> None:
    """Write, read, list and delete the values in a namespace."""


@dataclass(frozen=True)
class NamespaceArgs:
    """--namespace-id, or --binding with --config and --env (`namespace_options` hands them to the
    command as `namespace`)."""

    namespace_id: str | None
    binding: str | None
    config: Path | None
    env_name: str | None


def namespace_options(func: Callable[..., None]) -> Callable[..., None]:
    """Which namespace: --namespace-id, or --binding from the configuration (with --env)."""

    @functools.wraps(func)
    def command(
        *args: Any,
        namespace_id: str | None,
        binding: str | None,
        config: Path | None,
        env_name: str | None,
        **kw: Any,
    ) -> None:
        func(*args, namespace=NamespaceArgs(namespace_id, binding, config, env_name), **kw)

    decorated = click.option(
        "-e", "--env", "env_name", metavar="NAME", help="Read [env.NAME]'s kv_namespaces."
    )(command)
    decorated = click.option(
        "-c",
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Configuration file for --binding (default: the nearest wrangler.* file).",
    )(decorated)
    decorated = click.option(
        "--binding",
        metavar="NAME",
        help="A binding from the configuration's kv_namespaces (its id, or the namespace "
        "`mayfly deploy` provisioned for it).",
    )(decorated)
    return click.option("--namespace-id", metavar="ID", help="The namespace's id.")(decorated)


class NamespaceRef:
    """--namespace-id, or --binding resolved against the configuration and the account."""

    def __init__(self, args: NamespaceArgs, out: Output) -> None:
        namespace_id, binding = args.namespace_id, args.binding
        if (namespace_id is None) == (binding is None):
            raise CommandFailed(
                "usage", "Pass exactly one of --namespace-id ID and --binding NAME.", EXIT_USAGE
            )
        self.namespace_id = namespace_id
        self.binding = binding
        self.worker: str | None = None
        self.account_id: str | None = None
        if binding is not None:
            target = load_target(None, args.config, args.env_name, need_config=True)
            project_warnings(out, target.project)
            assert target.project is not None
            configured = {k.binding: k for k in target.project.kv_namespaces}
            if binding not in configured:
                names = ", ".join(sorted(configured)) or "none"
                raise CommandFailed(
                    "usage",
                    f"No KV binding {binding!r} in the configuration's kv_namespaces "
                    f"(bindings: {names}).",
                    EXIT_USAGE,
                )
            self.namespace_id = configured[binding].id
            self.worker = target.name
            self.account_id = target.account_id

    def resolve(self, authed: MayflyClient, account: AccountInfo) -> str:
        if self.namespace_id is not None:
            return self.namespace_id
        assert self.binding is not None and self.worker is not None
        try:
            settings = authed.workers.settings(account.id, self.worker)
        except MayflyAPIError as exc:
            if exc.code != SCRIPT_NOT_FOUND:
                raise
            settings = {}
        for item in settings.get("bindings") or []:
            if item.get("name") == self.binding and item.get("type") == "kv_namespace":
                return str(item["namespace_id"])
        title = namespace_title(self.worker, self.binding)
        found = authed.kv.find_namespace(account.id, title)
        if found is None:
            raise CommandFailed(
                "namespace_not_provisioned",
                f"The binding {self.binding} has no id in the configuration and no namespace "
                f"titled {title} exists yet: run `mayfly deploy` first (it creates one), or "
                "pass --namespace-id.",
            )
        return found.id


# -- namespaces -------------------------------------------------------------------------------


@namespace.command("create")
@click.argument("title")
@account_options
def namespace_create(title: str, api: ApiArgs) -> None:
    """Create a namespace titled TITLE (10014 if the title is taken).

    \b
    --json prints: id, title.
    """
    out = api.output()
    with out.errors():
        ran = api.run(
            out,
            lambda a, acct: a.kv.create_namespace(acct.id, title),
        )
        created = ran.value
        binding = title if IDENTIFIER.match(title) else "MY_KV"
        out.result(
            {"id": created.id, "title": created.title},
            [
                f"Created KV namespace {created.title} ({created.id}). To bind it, add to "
                "wrangler.toml:",
                "",
                "[[kv_namespaces]]",
                f'binding = "{binding}"',
                f'id = "{created.id}"',
            ],
        )


@namespace.command("list")
@account_options
def namespace_list(api: ApiArgs) -> None:
    """List the account's namespaces, by title.

    \b
    --json prints an array of {id, title}.
    """
    out = api.output()
    with out.errors():
        ran = api.run(out, lambda a, acct: a.kv.list_namespaces(acct.id))
        width = max((len(n.title) for n in ran.value), default=0)
        out.result(
            [{"id": n.id, "title": n.title} for n in ran.value],
            [f"{n.title.ljust(width)}  {n.id}" for n in ran.value]
            or ["No KV namespaces in this account."],
        )


@namespace.command("delete")
@namespace_options
@account_options
def namespace_delete(namespace: NamespaceArgs, api: ApiArgs) -> None:
    """Delete a namespace and every value in it.

    \b
    --json prints: id, deleted (true).
    """
    out = api.output()
    with out.errors():
        ref = NamespaceRef(namespace, out)

        def action(authed: MayflyClient, account: AccountInfo) -> str:
            resolved = ref.resolve(authed, account)
            authed.kv.delete_namespace(account.id, resolved)
            return resolved

        ran = api.run(out, action, account_id=ref.account_id)
        out.result({"id": ran.value, "deleted": True}, [f"Deleted KV namespace {ran.value}."])


# -- keys -------------------------------------------------------------------------------------


@key.command("put")
@click.argument("name", metavar="KEY")
@click.argument("value", required=False)
@click.option(
    "--path",
    "value_file",
    type=click.File("rb"),
    help="Read the value from this file ('-' for standard input) instead of VALUE.",
)
@click.option("--metadata", metavar="JSON", help="Metadata to store with the value (JSON).")
@click.option("--ttl", type=click.IntRange(min=1), help="Expire the value after this many seconds.")
@click.option(
    "--expiration", type=click.IntRange(min=1), help="Expire the value at this Unix time."
)
@namespace_options
@account_options
def key_put(
    name: str,
    value: str | None,
    value_file: BinaryIO | None,
    metadata: str | None,
    ttl: int | None,
    expiration: int | None,
    namespace: NamespaceArgs,
    api: ApiArgs,
) -> None:
    """Write VALUE (or the file at --path) under KEY.

    \b
    --json prints: key, namespace_id, size.
    """
    out = api.output()
    with out.errors():
        if (value is None) == (value_file is None):
            raise CommandFailed("usage", "Pass the value as VALUE or with --path FILE.", EXIT_USAGE)
        data = value.encode() if value is not None else value_file.read()  # type: ignore[union-attr]
        meta: Any = None
        if metadata is not None:
            try:
                meta = json.loads(metadata)
            except ValueError as exc:
                raise CommandFailed("usage", f"--metadata is not JSON: {exc}", EXIT_USAGE) from exc
        ref = NamespaceRef(namespace, out)

        def action(authed: MayflyClient, account: AccountInfo) -> str:
            resolved = ref.resolve(authed, account)
            authed.kv.put(
                account.id,
                resolved,
                name,
                data,
                metadata=meta,
                expiration=expiration,
                expiration_ttl=ttl,
            )
            return resolved

        ran = api.run(out, action, account_id=ref.account_id)
        out.result(
            {"key": name, "namespace_id": ran.value, "size": len(data)},
            [f"Wrote {len(data)} bytes to {name!r} in namespace {ran.value}."],
        )


@key.command("get")
@click.argument("name", metavar="KEY")
@namespace_options
@account_options
def key_get(name: str, namespace: NamespaceArgs, api: ApiArgs) -> None:
    """Print the value of KEY: its exact bytes, no newline added.

    \b
    --json prints: key, value (the text, or null if it is not UTF-8),
      value_base64.
    """
    out = api.output()
    with out.errors():
        ref = NamespaceRef(namespace, out)
        ran = api.run(
            out,
            lambda a, acct: a.kv.get(acct.id, ref.resolve(a, acct), name),
            account_id=ref.account_id,
        )
        data = ran.value
        if not api.as_json:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        try:
            text: str | None = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        out.result(
            {"key": name, "value": text, "value_base64": base64.b64encode(data).decode()}, []
        )


@key.command("list")
@click.option("--prefix", default="", help="Only keys that start with this.")
@namespace_options
@account_options
def key_list(prefix: str, namespace: NamespaceArgs, api: ApiArgs) -> None:
    """List the keys (all pages).

    \b
    --json prints an array of {name, expiration, metadata}.
    """
    out = api.output()
    with out.errors():
        ref = NamespaceRef(namespace, out)

        def action(authed: MayflyClient, account: AccountInfo) -> list[KVKey]:
            return list(authed.kv.keys(account.id, ref.resolve(authed, account), prefix))

        ran = api.run(out, action, account_id=ref.account_id)
        out.result(
            [
                {"name": k.name, "expiration": k.expiration, "metadata": k.metadata}
                for k in ran.value
            ],
            [_key_line(k) for k in ran.value],
        )


def _key_line(item: KVKey) -> str:
    extra = []
    if item.expiration is not None:
        extra.append(f"expires {item.expiration}")
    if item.metadata is not None:
        extra.append(f"metadata {json.dumps(item.metadata)}")
    return item.name + (f"  ({'; '.join(extra)})" if extra else "")


@key.command("delete")
@click.argument("name", metavar="KEY")
@namespace_options
@account_options
def key_delete(name: str, namespace: NamespaceArgs, api: ApiArgs) -> None:
    """Delete KEY.

    \b
    --json prints: key, namespace_id, deleted (true).
    """
    out = api.output()
    with out.errors():
        ref = NamespaceRef(namespace, out)

        def action(authed: MayflyClient, account: AccountInfo) -> str:
            resolved = ref.resolve(authed, account)
            authed.kv.delete(account.id, resolved, name)
            return resolved

        ran = api.run(out, action, account_id=ref.account_id)
        out.result(
            {"key": name, "namespace_id": ran.value, "deleted": True},
            [f"Deleted {name!r} from namespace {ran.value}."],
        )
