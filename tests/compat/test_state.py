"""Issue 15's acceptance in one Worker: a D1 binding, an R2 binding and a service binding, deployed
by the real wrangler and by `mayfly deploy`; the Worker reads and writes them, and wrangler sees
its writes (`d1 execute --remote`, `r2 object get --remote`)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler
from tests.compat.data_plane import request_worker, temporary_account_name
from tests.serve import MAYFLY, server_environment

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

DATABASE_ID = re.compile(r'"?database_id"?\s*[=:]\s*"([0-9a-f-]{36})"')


class Anon:
    def __init__(self, server: MayflyServer, user: WranglerUser, project: Path) -> None:
        self.server, self.user, self.project = server, user, project

    def wrangler(self, *args: str, cwd: Path | None = None) -> WranglerResult:
        return run_wrangler(
            [*args, "--temporary"], cwd or self.project, self.server.env(), self.user
        )

    def get(self, script: str, path: str, **params: str) -> str:
        response = request_worker(
            self.server, temporary_account_name(self.user), script, path, **params
        )
        assert response.status_code == 200, response.text
        return response.text

    def seen_by_wrangler(self, name: str) -> tuple[Any, str]:
        rows = self.wrangler(
            "d1", "execute", "state-db", "--remote", "--json",
            "--command", f"SELECT greeting FROM visits WHERE name = '{name}'",
        )  # fmt: skip
        assert rows.exit_code == 0, str(rows)
        got = self.wrangler(
            "r2", "object", "get", f"state-files/visits/{name}.txt", "--pipe", "--remote"
        )
        assert got.exit_code == 0, str(got)
        return json.loads(rows.stdout)[0]["results"], got.stdout


@pytest.fixture(scope="module")
def anon(mayfly_server: MayflyServer, new_user: Any, new_project: Any) -> Anon:
    anon = Anon(mayfly_server, new_user("state-anon"), new_project("state-worker"))
    backend = anon.wrangler("deploy", cwd=new_project("r2-backend"))
    assert backend.exit_code == 0, str(backend)
    created = anon.wrangler("d1", "create", "state-db")
    assert created.exit_code == 0, str(created)
    found = DATABASE_ID.search(created.stdout)
    assert found, str(created)
    config = anon.project / "wrangler.toml"
    config.write_text(config.read_text().replace("DATABASE_ID", found.group(1)))
    return anon


def test_deployed_by_wrangler(anon: Anon) -> None:
    deployed = anon.wrangler("deploy")  # the bucket does not exist yet: wrangler provisions it
    assert deployed.exit_code == 0, str(deployed)
    assert anon.get("state-worker", "/write", name="ada") == "hello ada, from the backend"
    assert json.loads(anon.get("state-worker", "/read", name="ada")) == {
        "d1": "hello ada, from the backend",
        "r2": "hello ada, from the backend",
    }
    assert anon.seen_by_wrangler("ada") == (
        [{"greeting": "hello ada, from the backend"}],
        "hello ada, from the backend",
    )


def test_deployed_by_mayfly(anon: Anon, tmp_path: Path) -> None:
    config = anon.project / "wrangler.toml"
    config.write_text(config.read_text().replace('name = "state-worker"', 'name = "state-mayfly"'))
    env = server_environment()
    env.update(
        {
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / ".config"),
            "MAYFLY_API_URL": anon.server.api_url,
            "MAYFLY_API_TOKEN": anon.user.temporary_account()["account"]["apiToken"],
        }
    )
    done = subprocess.run(
        [str(MAYFLY), "deploy", "--json"],
        cwd=anon.project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert anon.get("state-mayfly", "/write", name="bo") == "hello bo, from the backend"
    assert json.loads(anon.get("state-mayfly", "/read", name="ada"))["d1"] == (
        "hello ada, from the backend"  # the same database and bucket as wrangler's Worker
    )
    assert anon.seen_by_wrangler("bo") == (
        [{"greeting": "hello bo, from the backend"}],
        "hello bo, from the backend",
    )
