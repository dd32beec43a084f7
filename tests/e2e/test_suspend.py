"""`mayfly admin account suspend` against a running server: its Workers answer 503 through the
data plane (within the shards' route cache lifetime) and serve again after `resume`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import auth, provision, upload_body
from tests.e2e.conftest import Server
from tests.e2e.test_backup import admin
from tests.e2e.test_logs import json_logging_server

pytestmark = pytest.mark.e2e


def until_status(server: Server, url: str, status: int, within: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        answer = server.get_worker(url)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.25)


def test_a_suspended_account_s_workers_answer_503(tmp_path: Path) -> None:
    with json_logging_server(tmp_path) as server:
        with httpx.Client(base_url=server.api_url + "/client/v4/", timeout=60) as api:
            account = provision(api)["account"]  # type: ignore[arg-type]
            deployed = api.put(
                f"accounts/{account['id']}/workers/scripts/hello",
                headers=auth(account["apiToken"]),
                **upload_body(),
            )
            assert deployed.status_code == 200, deployed.text
        url = f"http://hello.{account['name']}.localhost"
        assert server.get_worker(url).status_code == 200

        suspended = admin("account", "suspend", account["name"], data_dir=server.data_dir)
        assert suspended.returncode == 0, suspended.stderr
        answer = until_status(server, url, 503)
        assert answer.status_code == 503
        assert "suspended" in answer.text
        assert answer.headers["x-mayfly-error"] == "suspended"
        assert int(answer.headers["retry-after"]) >= 1

        resumed = admin("account", "resume", account["name"], data_dir=server.data_dir)
        assert resumed.returncode == 0, resumed.stderr
        assert until_status(server, url, 200).status_code == 200
