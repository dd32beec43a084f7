"""`mayfly r2 bucket create|list|delete` against a running server, in a temporary account."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Agent


def test_bucket_create_list_delete(agent: Agent, tmp_path: Path) -> None:
    created = agent.run("r2", "bucket", "create", "photos", "--temporary", "--json", cwd=tmp_path)
    assert created.exit_code == 0, created
    assert created.json()["name"] == "photos"
    again = agent.run("r2", "bucket", "create", "photos", "--temporary", "--json", cwd=tmp_path)
    assert again.exit_code != 0, again
    assert again.json()["error"]["code"] == 10004
    listed = agent.run("r2", "bucket", "list", "--temporary", cwd=tmp_path)
    assert listed.exit_code == 0, listed
    assert listed.stdout.startswith("photos  "), listed
    deleted = agent.run("r2", "bucket", "delete", "photos", "--temporary", cwd=tmp_path)
    assert deleted.exit_code == 0, deleted
    assert "Deleted R2 bucket photos." in deleted.stdout
    empty = agent.run("r2", "bucket", "list", "--temporary", "--json", cwd=tmp_path)
    assert empty.stdout.strip() == "[]", empty
