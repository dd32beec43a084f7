"""Replicas share one platform key: its fingerprint is kept in the database and `mayfly serve`
refuses to start with another key, saying why and what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mayfly.app import Platform
from mayfly.services.operations.platform_key import PlatformKeyError
from mayfly.settings import Settings
from tests.conftest import make_settings


def serve(data_dir: Path, database_url: str, secret_key: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}
    args = [sys.executable, "-c", "from mayfly.cli.main import main; main()", "serve"]
    args += ["--runtime", "false"]
    args += ["--api-port", "1", "--data-dir", str(data_dir), "--database-url", database_url]
    if secret_key:
        args += ["--secret-key", secret_key]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_replica_with_another_key_refuses_to_start(tmp_path: Path, database_url: str) -> None:
    first = Platform.create(make_settings(tmp_path, database_url=database_url, secret_key="one"))
    first.db.dispose()
    again = Platform.create(make_settings(tmp_path, database_url=database_url, secret_key="one"))
    again.db.dispose()

    started = serve(tmp_path / "other", database_url, secret_key="two")
    assert started.returncode != 0
    assert "is not the one this database was set up with" in started.stderr
    assert "same --secret-key / MAYFLY_SECRET_KEY" in started.stderr
    assert "Traceback" not in started.stderr


@pytest.mark.postgres
def test_postgresql_requires_the_key(tmp_path: Path, postgres_url: str) -> None:
    started = serve(tmp_path / "data", postgres_url, secret_key="")
    assert started.returncode != 0
    assert "the platform key must be set" in started.stderr
    with pytest.raises(PlatformKeyError):
        Platform.create(Settings(data_dir=tmp_path / "data", database_url=postgres_url))


def test_sqlite_checks_the_key_file_too(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    Platform.create(settings).db.dispose()
    (settings.data_dir / "secret.key").unlink()  # a lost key file: a new key would be made
    with pytest.raises(PlatformKeyError, match="fingerprint"):
        Platform.create(settings)
