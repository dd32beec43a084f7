"""`mayfly admin backup DIR` / `mayfly admin restore DIR` (SQLite installations)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mayfly.cli.serve import settings_options
from mayfly.services.operations.backup import BackupError, backup, restore
from mayfly.settings import load_settings


def _settings(flags: dict[str, Any]) -> Any:
    try:
        return load_settings(flags)
    except (ValueError, KeyError) as exc:
        raise click.UsageError(str(exc)) from exc


@click.command("backup")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def backup_command(directory: Path, as_json: bool, **flags: Any) -> None:
    """Back up the data dir into DIRECTORY (new or empty), safe while the server runs.

    The database is copied with SQLite's online backup API, then the blob files that copy
    references, then the platform key. PostgreSQL: use pg_dump (docs/operating.md).

    \b
    --json prints: backup ({directory, blobs, missing_blobs, database_bytes}).
    """
    try:
        done = backup(_settings(flags), directory)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"backup": done.to_json()}))
        return
    click.echo(f"Backed up into {directory}: the database and {done.blobs} blob files.")


@click.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options
def restore_command(directory: Path, as_json: bool, **flags: Any) -> None:
    """Restore the backup in DIRECTORY into a data dir that has no database yet.

    Start `mayfly serve` on that data dir afterwards: it applies any newer migrations.

    \b
    --json prints: restored ({database}).
    """
    try:
        database = restore(_settings(flags), directory)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"restored": {"database": str(database)}}))
        return
    click.echo(f"Restored {directory} into {database.parent}; start mayfly serve on it.")
