"""One tenant's slow D1 requests must not take the server's threads: D1 runs on its own executor
and an account holds at most PER_ACCOUNT requests at once (running or waiting for its database);
past that it is refused at once, while another account's queries still run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.resources.d1_runner import PER_ACCOUNT
from tests.conftest import auth, make_settings, provision

ENDLESS = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT count(*) FROM c"


def _database(client: TestClient, name: str) -> tuple[str, dict[str, str], str]:
    account: dict[str, Any] = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/d1/database"
    db = client.post(base, headers=token, json={"name": name}).json()["result"]["uuid"]
    return f"{base}/{db}/query", token, account["id"]


def test_an_account_cannot_hold_more_than_its_share_of_d1_threads(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, d1_query_timeout_ms_temporary=4_000)
    platform = Platform.create(settings)
    runner = platform.services.d1.runner
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        hostile, hostile_token, hostile_id = _database(client, "slow")
        other, other_token, _ = _database(client, "fine")
        answers: list[int] = []

        def endless() -> None:
            answers.append(
                client.post(hostile, headers=hostile_token, json={"sql": ENDLESS}).status_code
            )

        threads = [threading.Thread(target=endless) for _ in range(PER_ACCOUNT)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while runner.in_flight(hostile_id) < PER_ACCOUNT:
            assert time.monotonic() < deadline, "the slow requests never started"
            time.sleep(0.01)
        # One more is refused at once (before: it took a thread and waited for the database).
        refused = client.post(hostile, headers=hostile_token, json={"sql": "SELECT 1"})
        assert refused.status_code == 400
        assert "overloaded" in refused.json()["errors"][0]["message"]
        # Another account's queries still run meanwhile.
        fine = client.post(other, headers=other_token, json={"sql": "SELECT 1 AS one"})
        assert fine.status_code == 200 and fine.json()["result"][0]["results"] == [{"one": 1}]
        # Both answered while the slow ones still run (before: the refusal came only once one of
        # them had reached its deadline and let go of the database).
        assert not answers and runner.in_flight(hostile_id) == PER_ACCOUNT
        for thread in threads:
            thread.join(timeout=30)
        assert answers == [400] * PER_ACCOUNT  # each cancelled at its deadline
        assert runner.in_flight(hostile_id) == 0
    platform.db.dispose()
