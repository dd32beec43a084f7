"""`mayfly d1 create|list|execute|migrations apply`: D1 databases over the API, as wrangler's.

A DATABASE argument is a database's name or UUID, or the binding (or `database_name`) of one of the
configuration's `[[d1_databases]]`. Migrations are wrangler's: `<migrations_dir>/*.sql` in name
order, each applied once, in one request with its row in the `d1_migrations` table (atomic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from mayfly.cli.options import ApiArgs, account_options, load_target
from mayfly.cli.output import EXIT_USAGE, CommandFailed
from mayfly.sdk import AccountInfo, MayflyClient

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def d1() -> None:
    """D1 databases: SQL, migrations."""


@d1.group()
def migrations() -> None:
    """Apply the SQL files of the configuration's migrations_dir, each once."""


def config_option(func: F) -> F:
    return click.option(
        "-c",
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Configuration file (default: the nearest wrangler.* file, if any).",
    )(func)


@dataclass(frozen=True)
class DatabaseRef:
    """What DATABASE names: a configured binding (its id, or its name) or a name/UUID as given."""

    lookup: str
    migrations_dir: Path | None
    migrations_table: str
    worker: str | None = None

    @classmethod
    def parse(cls, database: str, config: Path | None, need_config: bool = False) -> DatabaseRef:
        try:
            target = load_target(None, config, None, need_config=need_config)
        except CommandFailed:
            if need_config:
                raise
            return cls(database, None, "d1_migrations")
        project = target.project
        if project is None:
            return cls(database, None, "d1_migrations")
        root = project.config_path.parent if project.config_path else project.root
        for entry in project.d1_databases:
            if database in (entry.binding, entry.database_name):
                lookup = entry.database_id or entry.database_name
                if lookup is None:  # mayfly deploy names it <worker>-<binding>
                    lookup = f"{project.name}-{entry.binding.lower().replace('_', '-')}"
                return cls(lookup, root / entry.migrations_dir, entry.migrations_table)
        return cls(database, root / "migrations", "d1_migrations")

    def resolve(self, authed: MayflyClient, account: AccountInfo) -> dict[str, Any]:
        found: dict[str, Any] = authed.call(
            "GET", f"/accounts/{account.id}/d1/database/{self.lookup}"
        )
        return found


def _query(
    authed: MayflyClient, account: AccountInfo, database: str, sql: str
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = authed.call(
        "POST", f"/accounts/{account.id}/d1/database/{database}/query", json={"sql": sql}
    )
    return results


@d1.command("create")
@click.argument("name")
@account_options
def create(name: str, api: ApiArgs) -> None:
    """Create a database named NAME (7502 if the name is taken).

    \b
    --json prints: uuid, name, created_at, …
    """
    out = api.output()
    with out.errors():
        ran = api.run(
            out,
            lambda a, acct: a.call("POST", f"/accounts/{acct.id}/d1/database", json={"name": name}),
        )
        db = ran.value
        out.result(
            db,
            [
                f"Created D1 database {db['name']} ({db['uuid']}). To bind it, add to "
                "wrangler.toml:",
                "",
                "[[d1_databases]]",
                'binding = "DB"',
                f'database_name = "{db["name"]}"',
                f'database_id = "{db["uuid"]}"',
            ],
        )


@d1.command("list")
@account_options
def list_databases(api: ApiArgs) -> None:
    """List the account's databases.

    \b
    --json prints an array of {uuid, name, created_at, file_size, …}.
    """
    out = api.output()
    with out.errors():
        ran = api.run(
            out,
            lambda a, acct: a.call("GET", f"/accounts/{acct.id}/d1/database?per_page=10000"),
        )
        width = max((len(d["name"]) for d in ran.value), default=0)
        out.result(
            ran.value,
            [f"{d['name'].ljust(width)}  {d['uuid']}  {d['file_size']} bytes" for d in ran.value]
            or ["No D1 databases in this account."],
        )


@d1.command("execute")
@click.argument("database")
@click.option("--command", "sql", metavar="SQL", help="SQL to run (one or more statements).")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A file of SQL to run (all or nothing).",
)
@config_option
@account_options
def execute(
    database: str, sql: str | None, file: Path | None, config: Path | None, api: ApiArgs
) -> None:
    """Run SQL on DATABASE, in one transaction: every statement or none.

    \b
    --json prints wrangler's: an array of {results, success, meta}, one per statement.
    """
    out = api.output()
    with out.errors():
        if (sql is None) == (file is None):
            raise CommandFailed("usage", "Pass exactly one of --command SQL and --file PATH.", 2)
        text = sql if sql is not None else file.read_text(encoding="utf-8")  # type: ignore[union-attr]
        ref = DatabaseRef.parse(database, config)

        def action(authed: MayflyClient, account: AccountInfo) -> list[dict[str, Any]]:
            return _query(authed, account, ref.resolve(authed, account)["uuid"], text)

        ran = api.run(out, action)
        lines = []
        for result in ran.value:
            for row in result.get("results") or []:
                lines.append("  ".join(f"{k}={v}" for k, v in row.items()))
        changes = sum(r["meta"].get("changes", 0) for r in ran.value)
        lines.append(f"Executed {len(ran.value)} statement(s); {changes} row(s) changed.")
        out.result(ran.value, lines)


@migrations.command("apply")
@click.argument("database")
@config_option
@account_options
def migrations_apply(database: str, config: Path | None, api: ApiArgs) -> None:
    """Apply DATABASE's unapplied migrations (<migrations_dir>/*.sql, by name), each once.

    \b
    --json prints: applied (the file names applied now), already (those applied before).
    """
    out = api.output()
    with out.errors():
        ref = DatabaseRef.parse(database, config)
        folder = ref.migrations_dir
        if folder is None or not folder.is_dir():
            raise CommandFailed(
                "no_migrations", f"No migrations folder at {folder or 'migrations'}.", EXIT_USAGE
            )
        files = sorted(p for p in folder.iterdir() if p.suffix == ".sql")
        table = '"' + ref.migrations_table.replace('"', '""') + '"'

        def action(authed: MayflyClient, account: AccountInfo) -> dict[str, list[str]]:
            uuid = ref.resolve(authed, account)["uuid"]
            _query(
                authed,
                account,
                uuid,
                f"CREATE TABLE IF NOT EXISTS {table}(id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);",
            )
            listing = f"SELECT name FROM {table} ORDER BY id"  # noqa: S608 (a quoted identifier)
            rows = _query(authed, account, uuid, listing)
            already = [str(r["name"]) for r in rows[0]["results"]]
            applied = []
            for path in files:
                if path.name in already:
                    continue
                name = path.name.replace("'", "''")
                body = path.read_text(encoding="utf-8")
                _query(
                    authed,
                    account,
                    uuid,
                    f"{body}\nINSERT INTO {table} (name) VALUES ('{name}');",
                )
                applied.append(path.name)
                out.notice(f"Applied {path.name}")
            return {"applied": applied, "already": already}

        ran = api.run(out, action)
        out.result(
            ran.value,
            [f"Applied {len(ran.value['applied'])} migration(s)."]
            if ran.value["applied"]
            else ["No migrations to apply."],
        )
