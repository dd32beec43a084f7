"""Claiming: the claim page, keep, move (with renames), the agent's view, and what stays secret."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, upload_body
from tests.integration.test_assets import SITE, upload_assets
from tests.integration.test_claim_support import (
    PASSWORD,
    cheap_password_hashing,
    claim_path,
    deploy,
    kv_namespace,
    kv_put,
    web,
)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def db_platform(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    """The platform on SQLite and on PostgreSQL (where blobs live in the database)."""
    platform = Platform.create(make_settings(tmp_path, database_url=database_url), clock=clock)
    yield platform
    platform.db.dispose()


@pytest.fixture
def db_client(db_platform: Platform) -> Iterator[TestClient]:
    with TestClient(db_platform.public_app(), base_url="http://testserver/client/v4/") as c:
        yield c


def status_of(client: TestClient, account: dict[str, Any]) -> dict[str, Any]:
    response = client.get(
        f"provisioning/previews/{account['id']}", headers=auth(account["apiToken"])
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def test_the_claim_page_shows_what_will_be_claimed(platform: Platform, client: TestClient) -> None:
    created = provision(client)
    account = created["account"]
    deploy(client, account["id"], account["apiToken"])
    ns = kv_namespace(client, account["id"], account["apiToken"], "sessions")
    kv_put(client, account["id"], account["apiToken"], ns, "k", "v")
    with web(platform) as browser:
        page = browser.get(claim_path(created))
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert account["name"] in html
    assert f"http://hello.{account['name']}.localhost:8788" in html
    assert "#1" in html  # version number
    assert "UTC" in html  # last deploy time
    assert "sessions" in html  # the KV namespace, with its key count
    assert "data-countdown" in html and "left" in html
    # Logged out: both forms, each returning to this claim page.
    assert 'action="/signup"' in html and 'action="/login"' in html
    assert html.count(f'name="next" value="{claim_path(created)}"') == 2
    assert 'rel="noreferrer noopener"' in html


def test_sign_up_then_keep(
    db_platform: Platform, db_client: TestClient, clock: ManualClock
) -> None:
    platform, client = db_platform, db_client
    created = provision(client)
    account = created["account"]
    deploy(client, account["id"], account["apiToken"])
    host = f"hello.{account['name']}.localhost"
    assert status_of(client, account)["status"] == "unclaimed"
    path = claim_path(created)
    with web(platform) as browser:
        browser.get(path)
        back = browser.post(
            "/signup", {"email": "ada@example.com", "password": PASSWORD, "next": path}
        )
        assert back.headers["location"] == path
        page = browser.get(path)
        assert "Keep it as a new account" in page.text
        assert "Move into one of my accounts" in page.text
        claimed = browser.post(path, {"action": "keep"})
        assert claimed.status_code == 303
        assert claimed.headers["location"] == f"/dashboard/accounts/{account['id']}?claimed=1"
        dashboard = browser.get("/dashboard")
        assert account["name"] in dashboard.text and f"http://{host}:8788" in dashboard.text
        detail = browser.get(f"/dashboard/accounts/{account['id']}")
        assert "account.claimed" in detail.text and "ada@example.com" in detail.text
        assert "account.provisioned" in detail.text and "script.deployed" in detail.text
        again = browser.get(path)
        assert again.status_code == 409 and "Already claimed" in again.text

    # The agent's token: 401/10002 with a message saying a human owns the account now.
    refused = client.get("accounts", headers=auth(account["apiToken"]))
    assert refused.status_code == 401
    error = refused.json()["errors"][0]
    assert error["code"] == 10002 and "claimed by a human" in error["message"]
    assert (
        client.put(
            f"accounts/{account['id']}/workers/scripts/hello", headers=auth(account["apiToken"])
        ).json()["errors"][0]["code"]
        == 10002
    )
    status = status_of(client, account)
    assert status["status"] == "claimed" and status["expiresAt"] is None
    assert status["claimedAt"] and status["name"] == account["name"]

    # The URL still serves, and no longer expires: past the old TTL the reaper leaves it alone.
    assert platform.services.routing.route(host).status == "ok"
    clock.advance(platform.settings.temporary_ttl + 60)
    assert asyncio.run(platform.services.reaper.run_once()) == 0
    route = platform.services.routing.route(host)
    assert route.status == "ok" and route.expires_at is None
    with platform.db.read() as conn:
        row = conn.execute(
            select(tables.accounts).where(tables.accounts.c.id == account["id"])
        ).one()
    assert row.kind == "permanent" and row.expires_at is None and row.owner_user_id


def test_unknown_expired_and_used_claim_links(
    platform: Platform, client: TestClient, clock: ManualClock
) -> None:
    expiring = provision(client)
    with web(platform) as browser:
        unknown = browser.get("/claim/not-a-real-token")
        assert unknown.status_code == 404 and "Claim link not found" in unknown.text
        clock.advance(platform.settings.temporary_ttl + 1)
        expired = browser.get(claim_path(expiring))
        assert expired.status_code == 410 and "expired" in expired.text
        asyncio.run(platform.services.reaper.run_once())
        deleted = browser.get(claim_path(expiring))  # from the tombstone
        assert deleted.status_code == 410
        fresh = provision(client)
        browser.signup("ada@example.com")
        browser.get(claim_path(fresh))
        assert browser.post(claim_path(fresh), {"action": "keep"}).status_code == 303
        used = browser.get(claim_path(fresh))
        assert used.status_code == 409
        # Posting to an expired link claims nothing.
        clock.advance(platform.settings.temporary_ttl + 1)
        late = provision(client)
        browser.get(claim_path(late))
        clock.advance(platform.settings.temporary_ttl + 1)
        assert browser.post(claim_path(late), {"action": "keep"}).status_code == 410


def test_a_claim_needs_a_logged_in_user_and_a_csrf_token(
    platform: Platform, client: TestClient
) -> None:
    created = provision(client)
    path = claim_path(created)
    with web(platform) as browser:
        anonymous = browser.post(path, {"action": "keep"}, page=path)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
        browser.signup("ada@example.com")
        forged = browser.client.post(path, data={"action": "keep"})
        assert forged.status_code == 403
    assert status_of(client, created["account"])["status"] == "unclaimed"


def test_claim_status_for_the_agent(
    platform: Platform, client: TestClient, clock: ManualClock
) -> None:
    created = provision(client)
    account = created["account"]
    status = status_of(client, account)
    assert status == {
        "id": account["id"],
        "name": account["name"],
        "status": "unclaimed",
        "expiresAt": account["expiresAt"],
        "claimedAt": None,
        "deletedAt": None,
    }
    other = provision(client)["account"]
    wrong = client.get(f"provisioning/previews/{other['id']}", headers=auth(account["apiToken"]))
    assert wrong.status_code == 403 and wrong.json()["errors"][0]["code"] == 9109
    assert client.get(f"provisioning/previews/{account['id']}").status_code == 401
    garbage = client.get(f"provisioning/previews/{account['id']}", headers=auth("nope"))
    assert garbage.json()["errors"][0]["code"] == 10000

    clock.advance(platform.settings.temporary_ttl + 1)
    assert status_of(client, account)["status"] == "expired"
    asyncio.run(platform.services.reaper.run_once())
    gone = status_of(client, account)  # the token row is deleted: answered from the tombstone
    assert gone["status"] == "expired" and gone["deletedAt"] and gone["expiresAt"]
    assert gone["name"] == account["name"]
    never = client.get(f"provisioning/previews/{'0' * 32}", headers=auth("mft_" + "x" * 43)).json()
    assert never["errors"][0]["code"] == 10001


def _owner_with_account(platform: Platform, client: TestClient, browser: Any) -> dict[str, Any]:
    """ada@example.com owning `acme`, which already has a Worker `hello` and a KV `cache`."""
    browser.signup("ada@example.com")
    created = browser.post("/dashboard/accounts", {"name": "acme"}, page="/dashboard")
    acme_id = created.headers["location"].rsplit("/", 1)[1]
    page = browser.post(
        f"/dashboard/accounts/{acme_id}/tokens",
        {"name": "t"},
        page=f"/dashboard/accounts/{acme_id}",
    )
    token = page.text.split('id="new-token">', 1)[1].split("<", 1)[0]
    deploy(client, acme_id, token, "hello")
    kv_namespace(client, acme_id, token, "cache")
    return {"id": acme_id, "token": token}


def test_move_into_an_existing_account_with_renames(
    db_platform: Platform, db_client: TestClient, clock: ManualClock
) -> None:
    platform, client = db_platform, db_client
    created = provision(client)
    temp = created["account"]
    token = temp["apiToken"]
    deploy(client, temp["id"], token, "hello")
    deploy(client, temp["id"], token, "api")
    cache = kv_namespace(client, temp["id"], token, "cache")
    kv_put(client, temp["id"], token, cache, "greeting", "hi there")
    path = claim_path(created)
    old_host = f"hello.{temp['name']}.localhost"
    blob_dir = platform.settings.data_dir / "blobs" / temp["id"]
    assert blob_dir.exists() == platform.db.is_sqlite

    with web(platform) as browser:
        acme = _owner_with_account(platform, client, browser)
        page = browser.get(path)
        assert "acme" in page.text and "Preview the move" in page.text
        preview = browser.get(f"{path}/move?into={acme['id']}")
        assert preview.status_code == 200
        text = preview.text
        assert f"http://hello.{temp['name']}.localhost:8788" in text
        assert "http://hello-2.acme.localhost:8788" in text  # a free name is suggested
        assert "http://api.acme.localhost:8788" in text
        assert "name taken" in text and "title taken" in text
        # Renaming onto a taken name is refused, and nothing is claimed.
        clash = browser.post(
            path,
            {
                "action": "move",
                "into": acme["id"],
                "rename:hello": "hello",
                "rename:api": "api",
                f"title:{cache}": "cache",
            },
        )
        assert clash.status_code == 409
        assert "already has a Worker named 'hello'" in html.unescape(clash.text)
        assert "already has a KV namespace titled 'cache'" in html.unescape(clash.text)
        assert status_of(client, temp)["status"] == "unclaimed"
        # "Update preview" re-renders with my names.
        updated = browser.post(
            path,
            {
                "action": "preview",
                "into": acme["id"],
                "rename:hello": "greeter",
                f"title:{cache}": "cache-2",
            },
        )
        assert "http://greeter.acme.localhost:8788" in updated.text
        moved = browser.post(
            path,
            {
                "action": "move",
                "into": acme["id"],
                "rename:hello": "greeter",
                "rename:api": "api",
                f"title:{cache}": "cache-2",
            },
        )
        assert moved.status_code == 303, moved.text
        assert moved.headers["location"] == f"/dashboard/accounts/{acme['id']}?merged=1"
        detail = browser.get(moved.headers["location"])
        assert "http://greeter.acme.localhost:8788" in detail.text
        assert "http://api.acme.localhost:8788" in detail.text
        assert "cache-2" in detail.text and "account.merged" in detail.text
        dashboard = browser.get("/dashboard")
        assert temp["name"] not in dashboard.text  # the emptied account is not listed

    routing = platform.services.routing
    gone = routing.route(old_host)
    assert gone.status == "moved"
    assert gone.message and "http://greeter.acme.localhost:8788" in gone.message
    assert routing.route(f"api.{temp['name']}.localhost").status == "moved"
    assert routing.route(f"nothing.{temp['name']}.localhost").status == "unknown"
    for name in ("greeter", "api", "hello"):  # acme's own hello is untouched
        route = routing.route(f"{name}.acme.localhost")
        assert route.status == "ok", name
        code = routing.version_code(route.version_id or "")
        assert code["account_id"] == acme["id"] and code["modules"]
    # KV data intact, now in acme, under the new title.
    namespaces = client.get(
        f"accounts/{acme['id']}/storage/kv/namespaces", headers=auth(acme["token"])
    ).json()["result"]
    assert sorted(n["title"] for n in namespaces) == ["cache", "cache-2"]
    value = client.get(
        f"accounts/{acme['id']}/storage/kv/namespaces/{cache}/values/greeting",
        headers=auth(acme["token"]),
    )
    assert value.text == "hi there"
    # Blobs moved: the old account's files are gone, and nothing of it is left to read.
    assert not blob_dir.exists()
    with platform.db.read() as conn:
        for table in (tables.scripts, tables.versions, tables.blobs, tables.kv_namespaces):
            assert (
                conn.execute(select(table).where(table.c.account_id == temp["id"])).first() is None
            ), table.name
        events = {(e.account_id, e.event) for e in conn.execute(select(tables.audit_events)).all()}
    assert (temp["id"], "account.claimed") in events and (acme["id"], "account.merged") in events
    # The agent: 10002, and the status says claimed.
    refused = client.get("accounts", headers=auth(token))
    assert refused.json()["errors"][0]["code"] == 10002
    assert status_of(client, temp)["status"] == "claimed"
    # Moved hosts are kept like tombstones, then purged.
    clock.advance(platform.settings.tombstone_cooldown + 1)
    asyncio.run(platform.services.reaper.run_once())
    assert routing.route(old_host).status == "unknown"


def test_only_my_accounts_can_be_move_targets(platform: Platform, client: TestClient) -> None:
    created = provision(client)
    path = claim_path(created)
    theirs, _ = platform.services.accounts.create_permanent("theirs")
    with web(platform) as browser:
        browser.signup("ada@example.com")
        preview = browser.get(f"{path}/move?into={theirs.id}")
        assert preview.status_code == 403
        browser.get(path)
        refused = browser.post(path, {"action": "move", "into": theirs.id})
        assert refused.status_code == 403
        assert status_of(client, created["account"])["status"] == "unclaimed"
        # Another temporary account is not a target either.
        other = provision(client)
        into_temp = browser.get(f"{path}/move?into={other['account']['id']}")
        assert into_temp.status_code == 403


def test_no_secret_in_clear_in_the_database_or_the_logs(
    platform: Platform, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = provision(client)
    claim_token = created["claim"]["url"].rsplit("/", 1)[1]
    secrets = [claim_token, created["account"]["apiToken"], PASSWORD]
    with web(platform) as browser:
        signed_up = browser.signup("ada@example.com", next_url=claim_path(created))
        secrets.append(signed_up.headers["set-cookie"].split(";")[0].split("=", 1)[1])
        browser.get(claim_path(created))
        browser.post(claim_path(created), {"action": "keep"})
        account_path = f"/dashboard/accounts/{created['account']['id']}"
        page = browser.post(f"{account_path}/tokens", {"name": "t"}, page=account_path)
        secrets.append(page.text.split('id="new-token">', 1)[1].split("<", 1)[0])
        device = client.post(
            "http://localhost:8787/oauth/device/code", data={"client_id": "mayfly-cli"}
        ).json()
        secrets += [
            device["device_code"],
            device["user_code"],
            device["user_code"].replace("-", ""),
        ]
    with web(platform) as stranger:
        assert stranger.login("ada@example.com", "a wrong password").status_code == 401
    assert all(len(s) >= 8 for s in secrets)
    dump = []
    with platform.db.read() as conn:
        for table in tables.metadata.sorted_tables:
            for row in conn.execute(select(table)).all():
                dump.append(repr(tuple(row)))
    text = "\n".join(dump)
    logs = "\n".join(
        r.getMessage() + (r.exc_text or "")
        for r in caplog.records
        if not r.name.startswith(("httpx", "httpcore"))  # the test's own client, not the server
    )
    for secret in secrets:
        assert secret not in text
        assert secret not in logs


def test_static_assets_move_with_their_worker(db_platform: Platform, db_client: TestClient) -> None:
    platform, client = db_platform, db_client
    created = provision(client)
    temp = created["account"]
    completion, _ = upload_assets(client, temp, "site", SITE)
    response = client.put(
        f"accounts/{temp['id']}/workers/scripts/site",
        headers=auth(temp["apiToken"]),
        **upload_body(bindings=[{"name": "ASSETS", "type": "assets"}], assets={"jwt": completion}),
    )
    assert response.status_code == 200, response.text
    path = claim_path(created)
    with web(platform) as browser:
        assert "5 static assets" in browser.get(path).text
        acme = _owner_with_account(platform, client, browser)
        # acme already holds one of the files (same content hash): it is kept once.
        upload_assets(client, {"id": acme["id"], "apiToken": acme["token"]}, "other", SITE)
        browser.get(path)
        moved = browser.post(path, {"action": "move", "into": acme["id"]})
        assert moved.status_code == 303, moved.text
    route = platform.services.routing.route("site.acme.localhost")
    assert route.status == "ok"
    code = platform.services.routing.version_code(route.version_id or "")
    entry = code["assets"]["manifest"]["/style.css"]
    assert entry["content_type"] == "text/css; charset=utf-8"
    data, _ = platform.services.assets.read(acme["id"], entry["hash"])
    assert data == b"body{}"
    with platform.db.read() as conn:
        left = conn.execute(
            select(tables.asset_files).where(tables.asset_files.c.account_id == temp["id"])
        ).all()
    assert left == []
