"""D1 databases owned like everything else an account holds: a claim moves them (renamed on a
clash), the reaper deletes their rows and files, quotas count them (and temporary accounts get
lower limits), and the dashboard and the claim pages list them."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.resources import quotas
from mayfly.services.resources.d1 import limits_for
from mayfly.settings import Settings
from mayfly.storage import resource_tables
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


def create_db(client: TestClient, account_id: str, token: str, name: str) -> str:
    response = client.post(
        f"accounts/{account_id}/d1/database", headers=auth(token), json={"name": name}
    )
    assert response.status_code == 200, response.text
    database_id: str = response.json()["result"]["uuid"]
    return database_id


def query(client: TestClient, account_id: str, token: str, db: str, sql: str) -> Any:
    return client.post(
        f"accounts/{account_id}/d1/database/{db}/query", headers=auth(token), json={"sql": sql}
    )


def test_a_claim_moves_databases_renaming_on_a_clash(
    platform: Platform, client: TestClient
) -> None:
    created = provision(client)
    temp = created["account"]
    token = temp["apiToken"]
    notes = create_db(client, temp["id"], token, "notes")
    query(client, temp["id"], token, notes, "CREATE TABLE n (v TEXT); INSERT INTO n VALUES ('x')")
    with web(platform) as browser:
        browser.signup("ada@example.com")
        made = browser.post("/dashboard/accounts", {"name": "acme"}, page="/dashboard")
        acme_id = made.headers["location"].rsplit("/", 1)[1]
        page = browser.post(
            f"/dashboard/accounts/{acme_id}/tokens",
            {"name": "t"},
            page=f"/dashboard/accounts/{acme_id}",
        )
        acme_token = page.text.split('id="new-token">', 1)[1].split("<", 1)[0]
        deploy(client, acme_id, acme_token, "hello")
        theirs = create_db(client, acme_id, acme_token, "notes")
        path = claim_path(created)
        assert "notes" in browser.get(path).text  # the claim page lists it
        preview = browser.get(f"{path}/move?into={acme_id}")
        assert "D1 databases" in preview.text and "notes-2" in preview.text
        moved = browser.post(path, {"action": "move", "into": acme_id})
        assert moved.status_code == 303, moved.text
        detail = browser.get(moved.headers["location"])
        assert "D1 databases" in detail.text and "notes-2" in detail.text  # the dashboard
    listed = client.get(f"accounts/{acme_id}/d1/database", headers=auth(acme_token)).json()
    assert sorted((d["name"], d["uuid"]) for d in listed["result"]) == sorted(
        [("notes", theirs), ("notes-2", notes)]
    )
    rows = query(client, acme_id, acme_token, "notes-2", "SELECT v FROM n").json()
    assert rows["result"][0]["results"] == [{"v": "x"}]
    with platform.db.read() as conn:
        left = conn.execute(
            select(resource_tables.d1_databases).where(
                resource_tables.d1_databases.c.account_id == temp["id"]
            )
        ).first()
    assert left is None


def test_the_reaper_leaves_no_row_and_no_file(
    platform: Platform, client: TestClient, clock: ManualClock
) -> None:
    temp = provision(client)["account"]
    token = temp["apiToken"]
    db = create_db(client, temp["id"], token, "doomed")
    query(client, temp["id"], token, db, "CREATE TABLE t (v); INSERT INTO t VALUES (1)")
    # An import that was uploaded and never run leaves a file too.
    body = b"INSERT INTO t VALUES (2);"
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    init = client.post(
        f"accounts/{temp['id']}/d1/database/{db}/import",
        headers=auth(token),
        json={"action": "init", "etag": etag},
    ).json()["result"]
    uploaded = client.put(init["upload_url"].replace("localhost:8787", "testserver"), content=body)
    assert uploaded.status_code == 200, uploaded.text
    d1_dir = platform.settings.data_dir / "d1"
    assert any(p.name.startswith(db) for p in d1_dir.rglob("*"))
    clock.advance(platform.settings.temporary_ttl + 1)
    assert asyncio.run(platform.services.reaper.run_once()) == 1
    assert not [p for p in d1_dir.rglob("*") if p.is_file() and db in p.name]
    with platform.db.read() as conn:
        assert conn.execute(select(resource_tables.d1_databases)).first() is None


def test_quotas_count_databases_and_their_bytes(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        quota_d1_databases_temporary=2,
        quota_bytes_temporary=256 * 1024,
        d1_max_database_bytes_temporary=10 * 1024 * 1024,
    )
    platform = Platform.create(settings)
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        temp = provision(client)["account"]
        token = temp["apiToken"]
        first = create_db(client, temp["id"], token, "one")
        create_db(client, temp["id"], token, "two")
        third = client.post(
            f"accounts/{temp['id']}/d1/database", headers=auth(token), json={"name": "three"}
        )
        assert third.status_code == 413 and third.json()["errors"][0]["code"] == 7406
        query(client, temp["id"], token, first, "CREATE TABLE b (v BLOB)")
        grown = query(client, temp["id"], token, first, "INSERT INTO b VALUES (zeroblob(100000))")
        assert grown.status_code == 200, grown.text
        with platform.db.read() as conn:
            usage = quotas.stored_bytes(conn, temp["id"], 0)
        assert usage["D1 databases"] >= 100_000
        # Past the account's storage quota: refused (10440) and rolled back.
        over = query(client, temp["id"], token, first, "INSERT INTO b VALUES (zeroblob(200000))")
        assert over.status_code == 413, over.text
        assert over.json()["errors"][0]["code"] == 10440 and "D1 databases" in over.text
        count = query(client, temp["id"], token, first, "SELECT count(*) AS n FROM b").json()
        assert count["result"][0]["results"] == [{"n": 1}]
    platform.db.dispose()


def test_temporary_accounts_get_lower_limits() -> None:
    settings = Settings()
    temporary, permanent = limits_for(settings, "temporary"), limits_for(settings, "permanent")
    assert temporary.max_bytes < permanent.max_bytes
    assert temporary.timeout_ms < permanent.timeout_ms
    assert (
        quotas.quota_for(settings, "temporary").d1_databases
        < quotas.quota_for(settings, "permanent").d1_databases
    )


def test_the_housekeeper_sweeps_d1_files_of_no_database(
    platform: Platform, client: TestClient
) -> None:
    temp = provision(client)["account"]
    live = create_db(client, temp["id"], temp["apiToken"], "live")
    d1 = platform.services.d1
    orphan = d1.root / "00000000-0000-4000-8000-000000000000.sqlite3"
    orphan.write_bytes(b"left by a crash")
    stale_upload = d1.uploads_dir() / f"{live}.{'0' * 32}.sql"
    stale_upload.parent.mkdir(parents=True, exist_ok=True)
    stale_upload.write_text("SELECT 1;")
    assert d1.sweep_orphans(3600) == 0  # too young
    assert d1.sweep_orphans(0) == 2
    assert not orphan.exists() and not stale_upload.exists()
    assert d1.path(live).exists()
