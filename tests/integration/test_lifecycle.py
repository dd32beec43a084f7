"""Expiry at use, the reaper, tombstones and audit entries — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, upload_body

CONTENT_TABLES = [
    tables.scripts,
    tables.versions,
    tables.modules,
    tables.deployments,
    tables.blobs,
    tables.kv_namespaces,
    tables.kv_entries,
    tables.api_tokens,
    tables.accounts,
]


@pytest.fixture
def db_platform(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    platform = Platform.create(
        make_settings(tmp_path, database_url=database_url, temporary_ttl=5), clock=clock
    )
    yield platform
    platform.db.dispose()


@pytest.fixture
def db_client(db_platform: Platform) -> Iterator[TestClient]:
    with TestClient(db_platform.public_app(), base_url="http://t/client/v4/") as c:
        yield c


def count_rows(platform: Platform, account_id: str) -> dict[str, int]:
    counts = {}
    with platform.db.read() as conn:
        for table in CONTENT_TABLES:
            column = table.c.id if table is tables.accounts else table.c.get("account_id")
            if column is None:  # modules: through their version
                query = select(func.count()).select_from(table)
            else:
                query = select(func.count()).select_from(table).where(column == account_id)
            counts[table.name] = conn.execute(query).scalar_one()
    return counts


def deploy(client: TestClient, account: dict[str, Any], script: str = "hello") -> None:
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/{script}",
        headers=auth(account["apiToken"]),
        **upload_body(),
    )
    assert response.status_code == 200, response.text


def test_expiry_is_enforced_at_use_then_the_reaper_deletes_everything(
    db_platform: Platform, db_client: TestClient, clock: ManualClock
) -> None:
    account = provision(db_client)["account"]
    other = provision(db_client)["account"]
    deploy(db_client, account)
    deploy(db_client, account, "second")
    deploy(db_client, other)
    host = f"hello.{account['name']}.localhost"
    assert db_platform.services.routing.route(host).status == "ok"

    clock.advance(6)
    response = db_client.get("accounts", headers=auth(account["apiToken"]))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == 10001
    assert "--temporary" in response.json()["errors"][0]["message"]
    assert db_platform.services.routing.route(host).status == "expired"
    before = count_rows(db_platform, account["id"])
    assert before["scripts"] == 2 and before["blobs"] >= 1

    assert asyncio.run(db_platform.services.reaper.run_once()) == 2
    after = count_rows(db_platform, account["id"])
    for name in (
        "scripts",
        "versions",
        "deployments",
        "blobs",
        "kv_namespaces",
        "kv_entries",
        "api_tokens",
        "accounts",
    ):
        assert after[name] == 0, name
    assert after["modules"] == 0  # nothing left at all: the other account expired too
    assert not (db_platform.settings.data_dir / "blobs" / account["id"]).exists()
    with db_platform.db.read() as conn:
        tomb = conn.execute(
            select(tables.tombstones).where(tables.tombstones.c.account_id == account["id"])
        ).one()
        events = [
            r.event
            for r in conn.execute(
                select(tables.audit_events).where(tables.audit_events.c.account_id == account["id"])
            )
        ]
    assert tomb.name == account["name"]
    assert events[0] == "account.provisioned" and events[-1] == "account.deleted"
    # Still 10001 for the deleted token, and the old URL answers "expired" (410 at the edge).
    gone = db_client.get("accounts", headers=auth(account["apiToken"]))
    assert gone.json()["errors"][0]["code"] == 10001
    assert db_platform.services.routing.route(host).status == "expired"
    # Idempotent: a second pass finds nothing.
    assert asyncio.run(db_platform.services.reaper.run_once()) == 0


def test_reaper_leaves_live_accounts_alone(
    db_platform: Platform, db_client: TestClient, clock: ManualClock
) -> None:
    account = provision(db_client)["account"]
    deploy(db_client, account)
    clock.advance(2)
    assert asyncio.run(db_platform.services.reaper.run_once()) == 0
    assert count_rows(db_platform, account["id"])["scripts"] == 1


def test_a_tombstoned_name_is_not_reissued_during_the_cooldown(
    db_platform: Platform,
    db_client: TestClient,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = provision(db_client)["account"]
    clock.advance(6)
    asyncio.run(db_platform.services.reaper.run_once())
    names = iter([account["name"], account["name"], "fresh-name"])
    monkeypatch.setattr("mayfly.services.temporary.provisioning.random_name", lambda: next(names))
    second = provision(db_client)["account"]
    assert second["name"] == "fresh-name"
    # After the cooldown the tombstone is purged and the name is free again.
    clock.advance(db_platform.settings.tombstone_cooldown + 1)
    asyncio.run(db_platform.services.reaper.run_once())
    monkeypatch.setattr(
        "mayfly.services.temporary.provisioning.random_name", lambda: account["name"]
    )
    third = provision(db_client)["account"]
    assert third["name"] == account["name"]


def test_reapers_on_two_replicas_do_not_collide(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path, database_url=database_url, temporary_ttl=5)
    one = Platform.create(settings, clock=clock)
    two = Platform.create(settings, clock=clock)
    with TestClient(one.public_app(), base_url="http://t/client/v4/") as client:
        accounts = [provision(client)["account"] for _ in range(4)]
        for account in accounts:
            deploy(client, account)
    clock.advance(6)

    async def both() -> list[int]:
        return list(
            await asyncio.gather(one.services.reaper.run_once(), two.services.reaper.run_once())
        )

    assert sum(asyncio.run(both())) == 4
    with one.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(tables.accounts)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(tables.tombstones)).scalar_one() == 4
    one.db.dispose()
    two.db.dispose()


def test_restart_keeps_all_data(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    first = Platform.create(settings)
    with TestClient(first.public_app(), base_url="http://t/client/v4/") as client:
        account = provision(client)["account"]
        deploy(client, account)
    first.db.dispose()
    second = Platform.create(settings)
    with TestClient(second.public_app(), base_url="http://t/client/v4/") as client:
        response = client.get(
            f"accounts/{account['id']}/workers/scripts/hello/deployments",
            headers=auth(account["apiToken"]),
        )
    assert response.status_code == 200
    route = second.services.routing.route(f"hello.{account['name']}.localhost")
    assert route.status == "ok"
    assert second.services.routing.version_code(route.version_id or "")["modules"]
    second.db.dispose()
