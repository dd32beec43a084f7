"""`mayfly admin` finds the server's database as `mayfly serve` does (--data-dir, MAYFLY_DATA_DIR,
--database-url, MAYFLY_DATABASE_URL) and warns when it would create a new one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mayfly.cli.main import cli

WARNING = "no Mayfly database at"


def create(name: str, *args: str, env: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    result = CliRunner().invoke(
        cli, ["admin", "account", "create", name, "--json", *args], env=env or {}
    )
    assert result.exit_code == 0, result.output
    created: dict[str, str] = json.loads(result.stdout)
    return created, result.stderr


def test_a_new_database_is_announced_and_an_existing_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAYFLY_DATA_DIR", raising=False)
    monkeypatch.delenv("MAYFLY_DATABASE_URL", raising=False)
    data_dir = tmp_path / "server-data"
    _, first = create("first", "--data-dir", str(data_dir))
    assert WARNING in first
    assert str(data_dir / "mayfly.db") in first
    assert "MAYFLY_DATA_DIR" in first
    _, again = create("second", "--data-dir", str(data_dir))
    assert WARNING not in again


def test_the_data_dir_comes_from_the_environment_as_for_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAYFLY_DATABASE_URL", raising=False)
    data_dir = tmp_path / "from-env"
    create("first", "--data-dir", str(data_dir))
    monkeypatch.chdir(tmp_path)  # somewhere else: the default .mayfly here would be a new one
    _, stderr = create("second", env={"MAYFLY_DATA_DIR": str(data_dir)})
    assert WARNING not in stderr
    assert not (tmp_path / ".mayfly").exists()
