"""docs/cli.md is generated from `--help`; this fails when it is out of date."""

from __future__ import annotations

from pathlib import Path

import click

from mayfly.cli.docs import render
from mayfly.cli.main import cli

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_up_to_date() -> None:
    assert DOCS.read_text() == render(cli), (
        "docs/cli.md is out of date: run `.venv/bin/python -m mayfly.cli.docs > docs/cli.md`"
    )


def test_every_command_is_in_the_reference() -> None:
    text = DOCS.read_text()
    names = cli.list_commands(click.Context(cli))  # type: ignore[attr-defined]
    assert "deploy" in names
    for name in names:
        assert f"## `mayfly {name}`" in text
