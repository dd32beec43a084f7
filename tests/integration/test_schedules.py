"""Cron triggers: the schedules API, the claiming of due runs, and what stops them (expiry,
delete, claim-move) — on SQLite and PostgreSQL."""

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


@pytest.fixture
def db_platform(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    platform = Platform.create(
        make_settings(tmp_path, database_url=database_url, cron_min_interval=300), clock=clock
    )
    yield platform
    platform.db.dispose()


@pytest.fixture
def db_client(db_platform: Platform) -> Iterator[TestClient]:
    with TestClient(db_platform.public_app(), base_url="http://t/client/v4/") as c:
        yield c


def deploy(client: TestClient, account: dict[str, Any], script: str = "cron") -> None:
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/{script}",
        headers=auth(account["apiToken"]),
        **upload_body(),
    )
    assert response.status_code == 200, response.text


def schedules_url(account: dict[str, Any], script: str = "cron") -> str:
    return f"accounts/{account['id']}/workers/scripts/{script}/schedules"


def put(client: TestClient, account: dict[str, Any], body: Any, script: str = "cron") -> Any:
    return client.put(schedules_url(account, script), headers=auth(account["apiToken"]), json=body)


def stored(platform: Platform) -> int:
    with platform.db.read() as conn:
        count: int = conn.execute(
            select(func.count()).select_from(tables.worker_schedules)
        ).scalar_one()
    return count


def test_put_then_get_in_cloudflares_shapes(db_client: TestClient, db_platform: Platform) -> None:
    account = provision(db_client)["account"]
    deploy(db_client, account)
    empty = db_client.get(schedules_url(account), headers=auth(account["apiToken"]))
    assert empty.status_code == 200
    assert empty.json()["result"] == {"schedules": []}

    answer = put(db_client, account, [{"cron": "*/5 * * * *"}, {"cron": "0 17 * * sun"}])
    assert answer.status_code == 200, answer.text
    listed = answer.json()["result"]["schedules"]
    assert [s["cron"] for s in listed] == ["*/5 * * * *", "0 17 * * sun"]
    assert all(s["created_on"] and s["modified_on"] for s in listed)
    again = db_client.get(schedules_url(account), headers=auth(account["apiToken"]))
    assert again.json()["result"]["schedules"] == listed

    # PUT replaces them all; an empty list clears them.
    assert [
        s["cron"]
        for s in put(db_client, account, [{"cron": "0 0 * * *"}]).json()["result"]["schedules"]
    ] == ["0 0 * * *"]
    assert put(db_client, account, []).json()["result"] == {"schedules": []}
    assert stored(db_platform) == 0


@pytest.mark.parametrize(
    "body",
    [
        [{"cron": "61 * * * *"}],
        [{"cron": "* * * *"}],
        [{"cron": "* * * * *"}],  # shorter than cron_min_interval (300 s here)
        [{"cron": "0 0 31 2 *"}],
        [{"cron": 5}],
        [{"cron": "0 * * * *"}, {"cron": "bad"}],
        {"cron": "0 * * * *"},
        [{"cron": f"{m} * * * *"} for m in range(0, 60, 10)],  # more than 5
    ],
)
def test_bad_schedules_are_10021_and_nothing_is_stored(
    db_client: TestClient, db_platform: Platform, body: Any
) -> None:
    account = provision(db_client)["account"]
    deploy(db_client, account)
    assert put(db_client, account, [{"cron": "0 12 * * *"}]).status_code == 200
    answer = put(db_client, account, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["success"] is False
    assert answer.json()["errors"][0]["code"] == 10021
    listed = db_client.get(schedules_url(account), headers=auth(account["apiToken"]))
    assert [s["cron"] for s in listed.json()["result"]["schedules"]] == ["0 12 * * *"]


def test_unknown_worker_and_malformed_json(db_client: TestClient) -> None:
    account = provision(db_client)["account"]
    missing = put(db_client, account, [], script="nope")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == 10007
    deploy(db_client, account)
    broken = db_client.put(schedules_url(account), headers=auth(account["apiToken"]), content=b"[{")
    assert broken.status_code == 400
    other = provision(db_client)["account"]
    foreign = db_client.get(schedules_url(account), headers=auth(other["apiToken"]))
    assert foreign.status_code in (403, 404)


def test_due_runs_are_claimed_once_across_replicas(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    one = Platform.create(settings, clock=clock)
    two = Platform.create(settings, clock=clock)
    with TestClient(one.public_app(), base_url="http://t/client/v4/") as client:
        account = provision(client)["account"]
        deploy(client, account)
        assert put(client, account, [{"cron": "* * * * *"}]).status_code == 200
    assert one.services.schedules.claim_due() == []  # not due yet
    clock.advance(61)

    async def both() -> list[Any]:
        a, b = await asyncio.gather(
            asyncio.to_thread(one.services.schedules.claim_due),
            asyncio.to_thread(two.services.schedules.claim_due),
        )
        return [*a, *b]

    runs = asyncio.run(both())
    assert len(runs) == 1
    run = runs[0]
    assert (run.script, run.cron) == ("cron", "* * * * *")
    assert run.scheduled_time.second == 0
    assert one.services.schedules.host(run) == f"cron.{account['name']}.localhost"
    assert one.services.schedules.claim_due() == []  # the next run is a minute away
    # Several missed runs (no scheduler was up): one late run, then the schedule goes on.
    clock.advance(600)
    assert len(one.services.schedules.claim_due()) == 1
    assert two.services.schedules.claim_due() == []
    one.db.dispose()
    two.db.dispose()


def test_expiry_delete_and_the_reaper_stop_schedules(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    platform = Platform.create(
        make_settings(tmp_path, database_url=database_url, temporary_ttl=300), clock=clock
    )
    with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
        account = provision(client)["account"]
        deploy(client, account, "a")
        deploy(client, account, "b")
        assert put(client, account, [{"cron": "* * * * *"}], "a").status_code == 200
        assert put(client, account, [{"cron": "* * * * *"}], "b").status_code == 200
        deleted = client.delete(
            f"accounts/{account['id']}/workers/scripts/b", headers=auth(account["apiToken"])
        )
        assert deleted.status_code == 200
    assert stored(platform) == 1
    clock.advance(120)
    assert [r.script for r in platform.services.schedules.claim_due()] == ["a"]
    clock.advance(300)  # the account expired: nothing fires, the reaper deletes the rest
    assert platform.services.schedules.claim_due() == []
    asyncio.run(platform.services.reaper.run_once())
    assert stored(platform) == 0
    platform.db.dispose()


def test_a_claim_moves_the_schedules_with_the_worker(
    client: TestClient, platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_claim_support import cheap_password_hashing

    cheap_password_hashing(monkeypatch)
    created = provision(client)
    account = created["account"]
    deploy(client, account)
    assert put(client, account, [{"cron": "*/5 * * * *"}]).status_code == 200
    services = platform.services
    user = services.users.sign_up("ada@example.com", "correct horse battery staple")
    target = services.memberships.create_account(user, "acme")
    claim_token = created["claim"]["url"].rsplit("/", 1)[1]
    asyncio.run(services.claims.move(claim_token, user, target.id))
    with platform.db.read() as conn:
        rows = conn.execute(select(tables.worker_schedules)).all()
    assert [(r.account_id, r.cron) for r in rows] == [(target.id, "*/5 * * * *")]
    clock.advance(301)
    runs = services.schedules.claim_due()
    assert [(r.account_name, r.script) for r in runs] == [("acme", "cron")]
