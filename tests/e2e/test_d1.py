"""`mayfly deploy` with `[[d1_databases]]` (auto-provisioned by name, and without one) and the
`mayfly d1` commands against a running server with its data plane: the Worker reads and writes
its database, and `mayfly d1 execute` sees what it wrote."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Agent, Server

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[1] / "compat" / "projects" / "d1-worker"


def first_200(server: Server, url: str, path: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = server.get_worker(url, path)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def project(root: Path, name: str, database_lines: str) -> Path:
    shutil.copytree(PROJECT, root)
    (root / "wrangler.toml").write_text(
        f'name = "{name}"\nmain = "index.js"\ncompatibility_date = "2025-01-01"\n\n'
        f'[[d1_databases]]\nbinding = "DB"\n{database_lines}'
    )
    return root


def test_deploy_provisions_by_name_and_the_cli_applies_migrations_and_queries(
    agent: Agent, server: Server, tmp_path: Path
) -> None:
    notes = project(tmp_path / "notes", "notes-app", 'database_name = "notes-db"\n')
    deployed = agent.run("deploy", "--temporary", "--json", cwd=notes)
    assert deployed.exit_code == 0, deployed
    assert "D1 binding DB: created the database notes-db" in deployed.stderr, deployed
    url = deployed.json()["url"]
    applied = agent.run("d1", "migrations", "apply", "DB", "--temporary", "--json", cwd=notes)
    assert applied.exit_code == 0, applied
    assert applied.json() == {"applied": ["0001_notes.sql", "0002_tags.sql"], "already": []}
    again = agent.run("d1", "migrations", "apply", "notes-db", "--temporary", cwd=notes)
    assert again.exit_code == 0 and "No migrations to apply." in again.stdout, again
    seeded = agent.run(
        "d1", "execute", "DB", "--file", "seed.sql", "--temporary", "--json", cwd=notes
    )
    assert seeded.exit_code == 0, seeded
    # The Worker reads what the CLI wrote and writes what the CLI then reads.
    listed = first_200(server, url, "/notes")
    assert [n["body"] for n in listed.json()] == ["first; with a semicolon", "it's the second"]
    assert server.get_worker(url, "/add?text=from%20the%20worker").text == "3"
    rows = agent.run(
        "d1",
        "execute",
        "notes-db",
        "--command",
        "SELECT body FROM notes WHERE id = 3",
        "--temporary",
        "--json",
        cwd=notes,
    )
    assert rows.exit_code == 0, rows
    assert rows.json()[0]["results"] == [{"body": "from the worker"}]
    databases = agent.run("d1", "list", "--temporary", "--json", cwd=notes)
    assert [d["name"] for d in databases.json()] == ["notes-db"]
    # A redeploy finds the same database.
    redeployed = agent.run("deploy", "--temporary", "--json", cwd=notes)
    assert redeployed.exit_code == 0 and "created the database" not in redeployed.stderr
    assert server.get_worker(url, "/notes").json()[-1]["body"] == "from the worker"


def test_a_binding_without_name_or_id_gets_worker_binding(
    agent: Agent, server: Server, tmp_path: Path
) -> None:
    created = agent.run("d1", "create", "unused", "--temporary", "--json", cwd=tmp_path)
    assert created.exit_code == 0, created
    bare = project(tmp_path / "bare", "bare-app", "")
    deployed = agent.run("deploy", "--temporary", "--json", cwd=bare)
    assert deployed.exit_code == 0, deployed
    assert "created the database bare-app-db" in deployed.stderr, deployed
    made = agent.run(
        "d1",
        "execute",
        "DB",
        "--command",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        "--temporary",
        cwd=bare,
    )
    assert made.exit_code == 0, made
    url = deployed.json()["url"]
    assert first_200(server, url, "/add?text=bare").text == "1"
    assert server.get_worker(url, "/notes").json() == [{"id": 1, "body": "bare"}]
