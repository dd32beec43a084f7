"""Uploads workerd cannot run are refused, so a bad upload never replaces a good version.

workerd refuses a compatibility date outside 2000-2999 ("Invalid compatibility date") and a flag
named together with its opposite ("Compatibility flags are mutually contradictory"); a version
like that would answer every request with a 500.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.services.workers.uploads import ALLOWED_FLAGS, FLAG_PAIRS
from tests.clock import ManualClock
from tests.conftest import auth, provision, upload_body

BAD_DATES = ["0001-01-01", "1999-01-01", "1999-12-31", "2025-13-01", "2025-02-30", "20250101"]
CONTRADICTIONS = [
    (enable, disable)
    for enable, disable in FLAG_PAIRS
    if enable in ALLOWED_FLAGS and disable in ALLOWED_FLAGS
]


def test_every_allowed_flag_has_its_opposite_on_record() -> None:
    paired = {flag for pair in FLAG_PAIRS for flag in pair}
    assert not ALLOWED_FLAGS - paired
    assert ("url_standard", "url_original") in CONTRADICTIONS
    assert ("nodejs_compat_v2", "no_nodejs_compat_v2") in CONTRADICTIONS


@pytest.fixture
def worker(client: TestClient) -> dict[str, Any]:
    """An account with Worker `hello` deployed; returns the account and the deployed version."""
    account = provision(client)["account"]
    put = client.put(
        f"accounts/{account['id']}/workers/scripts/hello",
        headers=auth(account["apiToken"]),
        **upload_body(),
    )
    assert put.status_code == 200, put.text
    return {"account": account, "version": put.json()["result"]["deployment_id"]}


def _deployed(client: TestClient, account: dict[str, Any]) -> list[str]:
    """The version ids of the Worker's deployment, and of its versions, through the API."""
    base = f"accounts/{account['id']}/workers/scripts/hello"
    deployments = client.get(base + "/deployments", headers=auth(account["apiToken"]))
    current = deployments.json()["result"]["deployments"][0]
    versions = client.get(base + "/versions", headers=auth(account["apiToken"]))
    return [v["version_id"] for v in current["versions"]] + [
        v["id"] for v in versions.json()["result"]["items"]
    ]


def _refused(client: TestClient, worker: dict[str, Any], deploy: bool, **metadata: Any) -> None:
    account = worker["account"]
    base = f"accounts/{account['id']}/workers/scripts/hello"
    body = upload_body(**metadata)
    if deploy:
        response = client.put(base, headers=auth(account["apiToken"]), **body)
    else:
        response = client.post(base + "/versions", headers=auth(account["apiToken"]), **body)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == 10021
    assert _deployed(client, account) == [worker["version"], worker["version"]]


@pytest.mark.parametrize("deploy", [True, False], ids=["deploy", "version"])
@pytest.mark.parametrize("date", BAD_DATES)
def test_a_bad_date_is_400_and_the_good_version_stays(
    client: TestClient, worker: dict[str, Any], date: str, deploy: bool
) -> None:
    _refused(client, worker, deploy, compatibility_date=date)


@pytest.mark.parametrize("deploy", [True, False], ids=["deploy", "version"])
@pytest.mark.parametrize("flags", CONTRADICTIONS, ids="+".join)
def test_contradictory_flags_are_400_and_the_good_version_stays(
    client: TestClient, worker: dict[str, Any], flags: tuple[str, str], deploy: bool
) -> None:
    _refused(client, worker, deploy, compatibility_flags=list(flags))


def test_the_oldest_date_workerd_takes_is_accepted(
    client: TestClient, worker: dict[str, Any]
) -> None:
    account = worker["account"]
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/hello",
        headers=auth(account["apiToken"]),
        **upload_body(compatibility_date="2000-01-01", compatibility_flags=["url_standard"]),
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["compatibility_date"] == "2000-01-01"


def test_a_date_after_today_is_clamped_to_today(client: TestClient, clock: ManualClock) -> None:
    """workerd's loader refuses a date in the future even when its build knows the date."""
    clock.advance((datetime(2026, 6, 1, 12, tzinfo=UTC) - clock.now()).total_seconds())
    account = provision(client)["account"]
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/hello",
        headers=auth(account["apiToken"]),
        **upload_body(compatibility_date="2026-07-01"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["compatibility_date"] == "2026-06-01"
    assert "newer" in response.json()["messages"][0]["message"]


@pytest.mark.parametrize("deploy", [True, False], ids=["deploy", "version"])
@pytest.mark.parametrize("second", ["first", "second"])
def test_a_second_metadata_part_is_400_and_the_good_version_stays(
    client: TestClient, worker: dict[str, Any], deploy: bool, second: str
) -> None:
    """A duplicated singleton part is refused, not silently ignored (which one counted would be
    up to the parser)."""
    account = worker["account"]
    base = f"accounts/{account['id']}/workers/scripts/hello"
    files = upload_body()["files"]
    other = json.dumps({"main_module": "index.js", "compatibility_date": "2024-01-01"})
    duplicate = ("metadata", (None, other, "application/json"))
    files = [files[0], duplicate, *files[1:]] if second == "first" else [*files, duplicate]
    token = auth(account["apiToken"])
    if deploy:
        response = client.put(base, headers=token, files=files)
    else:
        response = client.post(base + "/versions", headers=token, files=files)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == 10021 and "duplicate part" in error["message"], error
    assert _deployed(client, account) == [worker["version"], worker["version"]]


def test_a_duplicated_settings_part_is_400_and_nothing_changes(
    client: TestClient, worker: dict[str, Any]
) -> None:
    account = worker["account"]
    path = f"accounts/{account['id']}/workers/scripts/hello/settings"
    token = auth(account["apiToken"])
    before = client.get(path, headers=token).json()["result"]
    for files in (
        [
            ("settings", (None, '{"tags": ["a"]}', "application/json")),
            ("settings", (None, '{"tags": ["b"]}', "application/json")),
        ],
        [("settings[logpush]", (None, "true")), ("settings[logpush]", (None, "false"))],
    ):
        response = client.patch(path, headers=token, files=files)
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["code"] == 10021 and "duplicate part" in error["message"], error
    assert client.get(path, headers=token).json()["result"] == before
