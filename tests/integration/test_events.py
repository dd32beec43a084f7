"""Event codes (issue 12, item 3): a budget of temporary accounts for a room behind one address."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.cli.main import cli
from mayfly.services.core import audit
from mayfly.settings import Settings
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, solve_challenge
from tests.integration.test_claim_support import cheap_password_hashing, deploy, web
from tests.unit.cli_support import Mayfly, app_transport
from tests.unit.test_cli_deploy import write_project


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, accounts_per_hour=2)


def admin(settings: Settings, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["admin", "event", *args, "--json", "--data-dir", str(settings.data_dir)]
    )
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def provision_with(client: TestClient, code: str) -> httpx.Response:
    challenge = client.post("provisioning/previews/challenge").json()["result"]
    return client.post(
        "provisioning/previews",
        json={
            "acceptTermsOfService": "yes",
            "challengeToken": challenge["challengeToken"],
            "solution": {"checkpoints": solve_challenge(challenge)},
            "eventCode": f"  {code}  ",  # wrangler trims; so do we
        },
    )


def test_an_event_of_three_accounts_from_one_address(
    settings: Settings, platform: Platform, client: TestClient, clock: ManualClock
) -> None:
    created = admin(
        settings, "create", "Workshop", "--accounts", "3", "--ttl", "900",
        "--organiser", "Org@Example.com",
    )  # fmt: skip
    code = created["code"]
    assert code.startswith("EVT-") and created["state"] == "open"
    provision(client)  # the address has one of its two accounts left
    accounts = []
    for _ in range(3):
        response = provision_with(client, code)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert result["eventCodeAccepted"] is True
        expires = datetime.fromisoformat(result["account"]["expiresAt"])
        assert abs((expires - clock.now()).total_seconds() - 900) < 2  # the event's TTL
        accounts.append(result["account"])
        deploy(client, result["account"]["id"], result["account"]["apiToken"])
    fourth = provision_with(client, code)
    assert fourth.status_code == 403
    assert fourth.json()["errors"][0]["code"] == 1040  # Cloudflare's: wrangler names it
    assert "no temporary accounts left" in fourth.json()["errors"][0]["message"]
    unknown = provision_with(client, "EVT-NOPE")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == 1036
    # Event accounts did not use the address's room: its last account is still there.
    provision(client)
    with platform.db.read() as conn:
        trail = audit.events_for(conn, accounts[0]["id"])
    assert trail[0]["details"]["event_name"] == "Workshop"
    assert admin(settings, "list")["events"][0]["accounts_used"] == 3

    with web(platform) as browser:
        browser.signup("someone@example.com")
        assert "Events you organise" not in browser.get("/dashboard").text
        event_id = created["id"]
        assert (
            browser.post(f"/dashboard/events/{event_id}/end", page="/dashboard").status_code == 404
        )
    with web(platform) as browser:
        browser.signup("org@example.com")
        page = browser.get("/dashboard").text
        assert "Events you organise" in page and code in page
        for account in accounts:
            assert account["name"] in page
            assert f"http://hello.{account['name']}.localhost:8788" in page
        assert page.count("<td>unclaimed</td>") == 3
        ended = browser.post(f"/dashboard/events/{event_id}/end", page="/dashboard")
        assert ended.status_code == 303
        assert page.count("<td>unclaimed</td>") == 3
        after = browser.get("/dashboard").text
        assert after.count("<td>expired</td>") == 3 and "End Workshop" not in after
    for account in accounts:
        route = platform.services.routing.route(f"hello.{account['name']}.localhost")
        assert route.status == "expired"  # the data plane answers 410
        gone = client.get(
            f"accounts/{account['id']}/workers/scripts", headers=auth(account["apiToken"])
        )
        assert gone.status_code == 401 and gone.json()["errors"][0]["code"] == 10001
    again = provision_with(client, code)
    assert again.status_code == 403 and again.json()["errors"][0]["code"] == 1038
    assert admin(settings, "list")["events"][0]["state"] == "ended"


def test_admin_event_end_expires_its_accounts(
    settings: Settings, platform: Platform, client: TestClient, clock: ManualClock
) -> None:
    created = admin(settings, "create", "Class", "--accounts", "5", "--ttl", "600")
    made = provision_with(client, created["code"]).json()["result"]["account"]
    ended = admin(settings, "end", created["code"])  # on the system clock, ahead of the test's
    clock.advance(60)
    assert ended["expired_accounts"] == 1 and ended["event"]["state"] == "ended"
    status = client.get(f"provisioning/previews/{made['id']}", headers=auth(made["apiToken"]))
    assert status.json()["result"]["status"] == "expired"


def test_create_refuses_bad_input(settings: Settings, platform: Platform) -> None:
    result = CliRunner().invoke(
        cli,
        ["admin", "event", "create", "X", "--accounts", "0", "--ttl", "600", "--json",
         "--data-dir", str(settings.data_dir)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == 10021


@pytest.fixture
def transport(platform: Platform) -> Iterator[httpx.MockTransport]:
    with app_transport(platform.public_app()) as t:
        yield t


def test_mayfly_deploy_temporary_event(
    settings: Settings,
    transport: httpx.MockTransport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = admin(settings, "create", "Room", "--accounts", "1", "--ttl", "1200")
    monkeypatch.chdir(write_project(tmp_path / "project"))
    first = Mayfly(transport, tmp_path / "one")
    code, body = first.json("deploy", "--temporary", "--event", created["code"])
    assert code == 0, body
    assert body["created_or_reused"] == "created"
    # A cached account and --event: refused before anything is created (as wrangler does).
    code, body = first.json("deploy", "--temporary", "--event", created["code"])
    assert code == 1 and body["error"]["code"] == "event_conflict"
    second = Mayfly(transport, tmp_path / "two")
    code, body = second.json("deploy", "--temporary", "--event", created["code"])
    assert code == 1 and body["error"]["code"] == 1040
    assert not second.cache_file.exists()


def test_a_code_past_its_expires_at_provisions_nothing(
    settings: Settings, platform: Platform, client: TestClient, clock: ManualClock
) -> None:
    until = (clock.now() + timedelta(hours=1)).isoformat()
    code = admin(
        settings, "create", "Day", "--accounts", "9", "--ttl", "600", "--expires-at", until
    )["code"]
    assert provision_with(client, code).status_code == 200
    clock.advance(3601)
    late = provision_with(client, code)
    assert late.status_code == 403 and late.json()["errors"][0]["code"] == 1038
    assert "has ended" in late.json()["errors"][0]["message"]
