"""A logged-in human who is not ready to claim extends a temporary account (issue 12, item 2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.core import audit
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision
from tests.integration.test_claim_support import (
    cheap_password_hashing,
    claim_path,
    deploy,
    web,
)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def db_platform(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        temporary_ttl=3600,
        extension_seconds=2 * 24 * 3600,
        extensions_max=5,
        extension_max_lifetime=5 * 24 * 3600,
    )
    platform = Platform.create(settings, clock=clock)
    yield platform
    platform.db.dispose()


def expires(client: TestClient, account: dict[str, Any]) -> datetime:
    response = client.get(
        f"provisioning/previews/{account['id']}", headers=auth(account["apiToken"])
    )
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["result"]["expiresAt"])


def test_a_logged_in_human_extends_up_to_the_maximum(
    db_platform: Platform, clock: ManualClock
) -> None:
    platform = db_platform
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        created = provision(client)
        account = created["account"]
        deploy(client, account["id"], account["apiToken"])
        first = expires(client, account)
        path = claim_path(created)
        with web(platform) as browser:
            browser.signup("rev@example.com", next_url=path)
            page = browser.get(path)
            assert "Not ready to decide?" in page.text and "5 extensions left" in page.text
            extended = browser.post(path, {"action": "extend"})
            assert extended.status_code == 303
            assert extended.headers["location"] == f"{path}?extended=1"
            assert (
                "Extended: the account now expires"
                in browser.get(extended.headers["location"]).text
            )
            second = expires(client, account)
            assert second - first == timedelta(days=2)
            # The agent's token and the Worker keep working past the original expiry.
            clock.advance(2 * 3600)
            listed = client.get(
                f"accounts/{account['id']}/workers/scripts", headers=auth(account["apiToken"])
            )
            assert listed.status_code == 200
            route = platform.services.routing.route(f"hello.{account['name']}.localhost")
            assert route.status != "expired"
            # Again: the third would pass the 5-day maximum, so it stops exactly there.
            browser.get(path)
            assert browser.post(path, {"action": "extend"}).status_code == 303
            browser.get(path)
            assert browser.post(path, {"action": "extend"}).status_code == 303
            created_at = first - timedelta(seconds=3600)
            assert expires(client, account) == created_at + timedelta(days=5)
            page = browser.get(path)
            assert "cannot be extended any further" in page.text
            refused = browser.post(path, {"action": "extend"})
            assert refused.status_code == 409
            assert "cannot be extended any further" in refused.text
            assert expires(client, account) == created_at + timedelta(days=5)
    with platform.db.read() as conn:
        events = [
            e for e in audit.events_for(conn, account["id"]) if e["event"] == "account.extended"
        ]
    assert len(events) == 3
    assert {e["actor"] for e in events} == {"rev@example.com"}


def test_the_count_of_extensions_is_enforced(tmp_path: Path, clock: ManualClock) -> None:
    platform = Platform.create(make_settings(tmp_path, extensions_max=1), clock=clock)
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        created = provision(client)
        path = claim_path(created)
        with web(platform) as browser:
            browser.signup("rev@example.com", next_url=path)
            browser.get(path)
            assert browser.post(path, {"action": "extend"}).status_code == 303
            browser.get(path)
            assert browser.post(path, {"action": "extend"}).status_code == 409
        assert expires(client, created["account"]) > clock.now() + timedelta(hours=24)


def test_anonymous_visitors_and_forged_forms_cannot_extend(
    platform: Platform, client: TestClient
) -> None:
    created = provision(client)
    account = created["account"]
    before = expires(client, account)
    path = claim_path(created)
    with web(platform) as browser:
        page = browser.get(path)
        assert 'value="extend"' not in page.text
        anonymous = browser.post(path, {"action": "extend"})
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
        browser.signup("rev@example.com", next_url=path)
        forged = browser.client.post(path, data={"action": "extend", "csrf_token": "nope"})
        assert forged.status_code == 403
    assert expires(client, account) == before
