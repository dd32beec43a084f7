"""What the fuzz run found, one test each, so that a fix stays fixed without the fuzzer."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import auth, provision, upload_body


@pytest.fixture
def worker(client: TestClient) -> tuple[str, str]:
    created = provision(client)["account"]
    path = f"accounts/{created['id']}/workers/scripts/fuzzed"
    uploaded = client.put(path, headers=auth(created["apiToken"]), **upload_body())
    assert uploaded.status_code == 200, uploaded.text
    return path, created["apiToken"]


@pytest.mark.parametrize(
    "body",
    [
        {"tail_consumers": [[None, None]]},
        {"tail_consumers": [{"service": 1}]},
        {"tail_consumers": "worker"},
        {"tags": [1]},
        {"tags": "a"},
        {"logpush": "yes"},
        {"observability": [True]},
    ],
)
def test_script_settings_of_the_wrong_type_are_refused_and_not_stored(
    client: TestClient, worker: tuple[str, str], body: dict[str, Any]
) -> None:
    path, token = worker
    patched = client.patch(f"{path}/script-settings", headers=auth(token), json=body)
    assert patched.status_code == 400, patched.text
    assert patched.json()["errors"][0]["code"] == 10021
    settings = client.get(f"{path}/script-settings", headers=auth(token)).json()["result"]
    assert settings["tail_consumers"] == [] and settings["tags"] == []
    assert settings["logpush"] is False and settings["observability"] == {"enabled": False}


def test_script_settings_of_the_right_type_are_stored(
    client: TestClient, worker: tuple[str, str]
) -> None:
    path, token = worker
    body = {
        "logpush": True,
        "observability": {"enabled": True},
        "tags": ["a"],
        "tail_consumers": [{"service": "logs"}],
    }
    patched = client.patch(f"{path}/script-settings", headers=auth(token), json=body)
    assert patched.status_code == 200, patched.text
    assert {k: patched.json()["result"][k] for k in body} == body
