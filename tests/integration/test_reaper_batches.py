"""The reaper deletes expired accounts in batches (set-based, one short transaction each) and
purges old records in batches — every table still cleaned, tombstones and audit kept, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.temporary import lifecycle
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision
from tests.integration.test_lifecycle import CONTENT_TABLES, count_rows, deploy


@pytest.fixture
def db_platform(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    platform = Platform.create(
        make_settings(tmp_path, database_url=database_url, temporary_ttl=5), clock=clock
    )
    yield platform
    platform.db.dispose()


def with_content(client: TestClient) -> dict[str, Any]:
    account = provision(client)["account"]
    deploy(client, account)
    namespaces = f"accounts/{account['id']}/storage/kv/namespaces"
    headers = auth(account["apiToken"])
    namespace = client.post(namespaces, json={"title": "t"}, headers=headers).json()["result"]
    put = client.put(f"{namespaces}/{namespace['id']}/values/k", content=b"v", headers=headers)
    assert put.status_code == 200, put.text
    return account


def test_a_pass_reaps_several_batches_and_cleans_every_table(
    db_platform: Platform, clock: ManualClock
) -> None:
    with TestClient(db_platform.public_app(), base_url="http://t/client/v4/") as client:
        doomed = [with_content(client) for _ in range(5)]
        clock.advance(3)
        survivor = with_content(client)
    clock.advance(3)  # the first five expired, the survivor has 2 s left
    reaper = db_platform.services.reaper
    reaper.batch_size, reaper.adaptive = 2, False
    invalidated: list[list[str]] = []

    class Recorder:
        async def invalidate(self, hosts: list[str]) -> None:
            invalidated.append(hosts)

    reaper.ctx.invalidator = Recorder()
    assert asyncio.run(reaper.run_once()) == 5
    assert [len(batch) for batch in invalidated] == [2, 2, 1]  # one call per batch
    for account in doomed:
        left = count_rows(db_platform, account["id"])
        assert {k: n for k, n in left.items() if n and k != "modules"} == {}, account
        assert not (db_platform.settings.data_dir / "blobs" / account["id"]).exists()
    with db_platform.db.read() as conn:
        tombs = conn.execute(select(tables.tombstones.c.name)).scalars().all()
        deleted = conn.execute(
            select(tables.audit_events.c.account_id, tables.audit_events.c.details).where(
                tables.audit_events.c.event == "account.deleted"
            )
        ).all()
        for table in CONTENT_TABLES:
            if "account_id" in table.c:
                left = conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.account_id.in_([a["id"] for a in doomed]))
                ).scalar_one()
                assert left == 0, table.name
    assert sorted(tombs) == sorted(a["name"] for a in doomed)
    assert sorted(r.account_id for r in deleted) == sorted(a["id"] for a in doomed)
    assert all(r.details == {"reason": "expired", "scripts": 1} for r in deleted)
    assert count_rows(db_platform, survivor["id"])["scripts"] == 1
    with db_platform.db.read() as conn:  # only the survivor's version still has modules
        modules = conn.execute(select(func.count()).select_from(tables.modules)).scalar_one()
    assert modules == 1
    assert asyncio.run(reaper.run_once()) == 0  # idempotent


def test_old_records_are_purged_in_batches(
    db_platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "PURGE_BATCH", 4)
    now = clock.now()
    with db_platform.db.begin() as conn:
        conn.execute(
            insert(tables.used_challenges),
            [{"id": f"old{i}", "expires_at": now - timedelta(seconds=1)} for i in range(11)]
            + [{"id": f"new{i}", "expires_at": now + timedelta(hours=1)} for i in range(3)],
        )
    db_platform.services.reaper.purge_old_records()
    with db_platform.db.read() as conn:
        left = conn.execute(select(tables.used_challenges.c.id)).scalars().all()
    assert sorted(left) == ["new0", "new1", "new2"]


@pytest.mark.parametrize(
    ("target", "sizes", "final"),
    [
        (3600.0, [2, 4, 1], 8),  # quick transactions: the batch doubles while batches are full
        (0.0, [8, 4, 2, 1], 1),  # slow ones: it halves, down to the minimum
    ],
)
def test_the_batch_adapts_to_how_long_its_transaction_takes(
    db_platform: Platform,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    target: float,
    sizes: list[int],
    final: int,
) -> None:
    monkeypatch.setattr(lifecycle, "REAP_TARGET_SECONDS", target)
    monkeypatch.setattr(lifecycle, "REAP_BATCH_MIN", 1)
    with TestClient(db_platform.public_app(), base_url="http://t/client/v4/") as client:
        for _ in range(sum(sizes)):
            deploy(client, provision(client)["account"])
    clock.advance(6)
    reaper = db_platform.services.reaper
    reaper.batch_size = sizes[0] if target else 8
    done = []
    while True:
        hosts, count = reaper.reap_batch()
        if not count:
            break
        done.append(count)
        assert len(hosts) == count
    assert done == sizes
    assert reaper.batch_size == final
