"""D1 with the real wrangler against `mayfly serve` with its data plane: `d1 create/list/info`,
`d1 migrations apply --remote`, `d1 execute --remote` (--command and --file, whose SQL goes through
the import upload URL), `d1 export --remote`, a Worker with a D1 binding deployed by wrangler (with
an id, and auto-provisioned) reading and writing it, and wrangler seeing the Worker's writes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler
from tests.compat.data_plane import request_worker, temporary_account_name

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

WORKER = "d1-worker"
DATABASE_ID = re.compile(r'"?database_id"?\s*[=:]\s*"([0-9a-f-]{36})"')


@dataclass
class Anon:
    """A wrangler user without credentials: every command runs with --temporary."""

    server: MayflyServer
    user: WranglerUser
    project: Path

    def wrangler(self, *args: str) -> WranglerResult:
        return run_wrangler([*args, "--temporary"], self.project, self.server.env(), self.user)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """`wrangler d1 execute --remote --command SQL --json`: the rows of its one statement."""
        result = self.wrangler("d1", "execute", "notes-db", "--remote", "--json", "--command", sql)
        assert result.exit_code == 0, str(result)
        answer = json.loads(result.stdout)
        rows: list[dict[str, Any]] = answer[0]["results"]
        return rows

    def worker(self, path: str, **params: str) -> str:
        response = request_worker(
            self.server, temporary_account_name(self.user), WORKER, path, **params
        )
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture(scope="module")
def anon(mayfly_server: MayflyServer, new_user: Any, new_project: Any) -> Anon:
    return Anon(mayfly_server, new_user("d1-anon"), new_project("d1-worker"))


@pytest.fixture(scope="module")
def created(anon: Anon) -> WranglerResult:
    return anon.wrangler("d1", "create", "notes-db")


@pytest.fixture(scope="module")
def database_id(anon: Anon, created: WranglerResult) -> str:
    found = DATABASE_ID.search(created.stdout)
    assert found, f"no database id printed\n{created}"
    config = anon.project / "wrangler.toml"
    config.write_text(config.read_text().replace("DATABASE_ID", found.group(1)))
    return found.group(1)


@pytest.fixture(scope="module")
def migrated(anon: Anon, database_id: str) -> WranglerResult:
    result = anon.wrangler("d1", "migrations", "apply", "notes-db", "--remote")
    assert result.exit_code == 0, str(result)
    return result


@pytest.fixture(scope="module")
def seeded(anon: Anon, migrated: WranglerResult) -> WranglerResult:
    result = anon.wrangler("d1", "execute", "notes-db", "--remote", "--file", "seed.sql", "-y")
    assert result.exit_code == 0, str(result)
    return result


@pytest.fixture(scope="module")
def deployed(anon: Anon, seeded: WranglerResult) -> WranglerResult:
    result = anon.wrangler("deploy")
    assert result.exit_code == 0, str(result)
    return result


def test_d1_create_and_list(anon: Anon, created: WranglerResult, database_id: str) -> None:
    assert created.exit_code == 0, str(created)
    assert "Successfully created DB 'notes-db'" in created.stdout, str(created)
    listed = anon.wrangler("d1", "list", "--json")
    assert listed.exit_code == 0, str(listed)
    assert [(d["uuid"], d["name"]) for d in json.loads(listed.stdout)] == [
        (database_id, "notes-db")
    ]
    again = anon.wrangler("d1", "create", "notes-db")
    assert again.exit_code == 1 and "A database with that name already exists" in again.stderr


def test_d1_info(anon: Anon, migrated: WranglerResult, database_id: str) -> None:
    info = anon.wrangler("d1", "info", "notes-db", "--json")
    assert info.exit_code == 0, str(info)
    described = json.loads(info.stdout)
    assert described["uuid"] == database_id and described["num_tables"] >= 2


def test_d1_migrations_apply_remote(anon: Anon, migrated: WranglerResult) -> None:
    assert "0001_notes.sql" in migrated.stdout and "0002_tags.sql" in migrated.stdout
    assert "✅" in migrated.stdout, str(migrated)
    applied = anon.rows("SELECT name FROM d1_migrations ORDER BY id")
    assert [r["name"] for r in applied] == ["0001_notes.sql", "0002_tags.sql"]
    again = anon.wrangler("d1", "migrations", "apply", "notes-db", "--remote")
    assert again.exit_code == 0 and "No migrations to apply" in again.stdout, str(again)


def test_d1_execute_remote_file_and_command(anon: Anon, seeded: WranglerResult) -> None:
    assert "Executed 2 queries" in seeded.stdout, str(seeded)
    assert anon.rows("SELECT body FROM notes ORDER BY id") == [
        {"body": "first; with a semicolon"},
        {"body": "it's the second"},
    ]
    # The trigger of migration 0002 ran for each row the file inserted.
    assert anon.rows("SELECT count(*) AS n FROM tags") == [{"n": 2}]
    failed = anon.wrangler("d1", "execute", "notes-db", "--remote", "--command", "SELECT * FROM x")
    assert failed.exit_code == 1
    assert "no such table: x: SQLITE_ERROR [code: 7500]" in failed.output, str(failed)


def test_a_deployed_worker_reads_and_writes_its_database(
    anon: Anon, deployed: WranglerResult, database_id: str
) -> None:
    shown = re.search(r"env\.DB \(([^)]*)\)\s+D1 Database", deployed.stdout)
    assert shown and shown.group(1) in ("notes-db", database_id), str(deployed)
    notes = json.loads(anon.worker("/notes"))
    assert [n["body"] for n in notes] == ["first; with a semicolon", "it's the second"]
    assert anon.worker("/add", text="from the worker") == "3"
    assert anon.worker("/batch", text="batched") == "5"
    # wrangler sees what the Worker wrote.
    assert anon.rows("SELECT body FROM notes WHERE id >= 3 ORDER BY id") == [
        {"body": "from the worker"},
        {"body": "batched 1"},
        {"body": "batched 2"},
    ]


def test_d1_export_remote(anon: Anon, deployed: WranglerResult) -> None:
    anon.worker("/add", text="exported")
    out = anon.project / "dump.sql"
    result = anon.wrangler("d1", "export", "notes-db", "--remote", "--output", str(out))
    assert result.exit_code == 0, str(result)
    dump = out.read_text()
    assert "CREATE TABLE notes" in dump and "CREATE TRIGGER notes_tagged" in dump
    assert "INSERT INTO \"notes\" VALUES(1,'first; with a semicolon');" in dump
    assert "'exported'" in dump
    schema = anon.project / "schema.sql"
    only = anon.wrangler(
        "d1", "export", "notes-db", "--remote", "--no-data", "--output", str(schema)
    )
    assert only.exit_code == 0, str(only)
    assert "CREATE TABLE notes" in schema.read_text()
    assert 'INSERT INTO "notes"' not in schema.read_text()


def test_deploy_provisions_a_database_and_a_redeploy_inherits_it(
    mayfly_server: MayflyServer, new_user: Any, new_project: Any
) -> None:
    user = new_user("d1-auto")
    project: Path = new_project("d1-worker", worker_name="auto-d1")
    config = project / "wrangler.toml"
    config.write_text(re.sub(r'(?m)^database_(id|name) = ".*"\n', "", config.read_text()))

    def wrangler(*args: str) -> WranglerResult:
        return run_wrangler([*args, "--temporary"], project, mayfly_server.env(), user)

    first = wrangler("deploy")
    assert first.exit_code == 0, str(first)
    assert "Provisioning DB (D1 Database)..." in first.stdout, str(first)
    assert "auto-d1-db" in first.stdout, str(first)
    listed = wrangler("d1", "list", "--json")
    assert [d["name"] for d in json.loads(listed.stdout)] == ["auto-d1-db"]
    made = wrangler(
        "d1",
        "execute",
        "auto-d1-db",
        "--remote",
        "--command",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
    )
    assert made.exit_code == 0, str(made)
    name = temporary_account_name(user)
    added = request_worker(mayfly_server, name, "auto-d1", "/add", text="provisioned")
    assert added.text == "1", added.text
    second = wrangler("deploy")
    assert second.exit_code == 0, str(second)
    assert "Provisioning" not in second.stdout, str(second)
    notes = request_worker(mayfly_server, name, "auto-d1", "/notes").json()
    assert notes == [{"id": 1, "body": "provisioned"}]


def test_d1_delete(anon: Anon, created: WranglerResult) -> None:
    made = anon.wrangler("d1", "create", "scratch-db")
    assert made.exit_code == 0, str(made)
    deleted = anon.wrangler("d1", "delete", "scratch-db", "-y")
    assert deleted.exit_code == 0, str(deleted)
    assert "Deleted 'scratch-db' successfully." in deleted.stdout, str(deleted)
    listed = anon.wrangler("d1", "list", "--json")
    assert "scratch-db" not in [d["name"] for d in json.loads(listed.stdout)]
    gone = anon.wrangler("d1", "execute", "scratch-db", "--remote", "--command", "SELECT 1")
    assert gone.exit_code == 1 and "Couldn't find a D1 DB" in gone.output, str(gone)
