"""Tainted addresses: a quarantined Worker of a temporary account makes the address that
provisioned it pay the maximum proof of work, with a smaller hourly allowance (issue 9)."""

from __future__ import annotations

import asyncio
import json
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
from tests.conftest import make_settings, solve_challenge
from tests.integration.test_quarantine import deploy, incident

# Idle work is 8 × 10 hashes, the maximum 8 × 400; nothing else raises it in these tests.
POW = {
    "pow_k": 8,
    "pow_g": 400,
    "pow_min_work": 80,
    "pow_busy_platform": 100_000,
    "pow_busy_address": 100_000,
}
MAX_WORK = 8 * 400
WHY = "accounts created from this address took the platform down recently"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, **POW)


def challenge(client: TestClient) -> dict[str, Any]:
    response = client.post("provisioning/previews/challenge", content="{}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["result"]
    return found


def create(
    client: TestClient, solved: dict[str, Any] | None = None, **extra: Any
) -> httpx.Response:
    solved = solved or challenge(client)
    return client.post(
        "provisioning/previews",
        content=json.dumps(
            {
                "acceptTermsOfService": "yes",
                "challengeToken": solved["challengeToken"],
                "solution": {"checkpoints": solve_challenge(solved)},
                **extra,
            }
        ),
        headers={"content-type": "application/json"},
    )


def account(client: TestClient) -> dict[str, Any]:
    response = create(client)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["result"]["account"]
    return found


def work(client: TestClient) -> int:
    found = challenge(client)
    return int(found["k"]) * int(found["g"])


def test_a_quarantined_worker_taints_the_address_that_provisioned_its_account(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    assert work(client) == 80
    first = account(client)
    assert incident(platform, [deploy(client, first, "loop")], certain=True) == ["loop"]
    # New accounts from the address now cost the maximum work, whatever the pressure.
    assert work(client) == MAX_WORK
    with platform.db.read() as conn:
        (entry,) = [
            e
            for e in audit.events_for(conn, first["id"])
            if e["event"] == "account.address_tainted"
        ]
    assert entry["actor"] == "data-plane"
    assert entry["details"]["address"] == "testclient"  # the limiter's key of the test client
    assert entry["details"]["script"] == "loop"
    (listed,) = platform.services.provisioning.taints.list_all()
    assert listed.account_id == first["id"] and listed.address == "testclient"
    # It ends after --address-taint-seconds (a day by default).
    clock.advance(platform.settings.address_taint_seconds + 1)
    assert work(client) == 80
    assert platform.services.provisioning.taints.list_all() == []


def test_a_tainted_address_may_create_fewer_accounts_an_hour_and_is_told_why(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    first = account(client)
    incident(platform, [deploy(client, first, "loop")], certain=True)
    clock.advance(10)
    account(client)  # the second of the hour: --tainted-accounts-per-hour is 2
    clock.advance(10)
    refused = create(client)
    assert refused.status_code == 429, refused.text
    error = refused.json()["errors"][0]
    assert error["code"] == 10429
    assert WHY in error["message"]
    assert "only 2 an hour" in error["message"]
    # Allowed again once the first account of the hour is an hour old.
    assert int(refused.headers["retry-after"]) == 3600 - 20
    clock.advance(3600 - 20)
    assert create(client).status_code == 200


def test_the_retry_after_ends_with_the_taint(tmp_path: Path, clock: ManualClock) -> None:
    settings = make_settings(tmp_path, address_taint_seconds=600.0, **POW)
    platform = Platform.create(settings, clock=clock)
    try:
        with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
            first = account(client)
            incident(platform, [deploy(client, first, "loop")], certain=True)
            account(client)
            refused = create(client)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) == 600
            clock.advance(601)  # the taint ended: the usual 20 an hour again
            assert work(client) == 80
            assert create(client).status_code == 200
    finally:
        platform.db.dispose()


def test_a_challenge_issued_before_the_taint_is_refused(
    client: TestClient, platform: Platform
) -> None:
    first = account(client)
    cheap = challenge(client)
    assert int(cheap["g"]) == 10
    incident(platform, [deploy(client, first, "loop")], certain=True)
    refused = create(client, cheap)
    assert refused.status_code == 403
    error = refused.json()["errors"][0]
    assert error["code"] == 1019
    assert WHY in error["message"] and "request a new one" in error["message"]
    assert create(client).status_code == 200


def test_suspects_never_taint_only_verdicts_do(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    offender_account, neighbour_account = account(client), account(client)
    offender = deploy(client, offender_account, "loop")
    neighbour = deploy(client, neighbour_account, "good")
    # One ambiguous incident: the prime suspect is not quarantined, so nothing is tainted.
    assert incident(platform, [offender, neighbour], certain=False) == []
    assert work(client) == 80
    assert platform.services.provisioning.taints.list_all() == []
    clock.advance(30)
    # The second makes it the rule's verdict: the offender's account taints the address.
    assert incident(platform, [offender, neighbour], certain=False) == ["loop"]
    (taint,) = platform.services.provisioning.taints.list_all()
    assert taint.account_id == offender_account["id"]  # the neighbour's account never
    assert work(client) == MAX_WORK


def test_a_claimed_accounts_worker_does_not_taint(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_claim_support import cheap_password_hashing

    cheap_password_hashing(monkeypatch)
    created = create(client).json()["result"]
    version = deploy(client, created["account"], "loop")
    services = platform.services
    user = services.users.sign_up("ada@example.com", "correct horse battery staple")
    claim_token = created["claim"]["url"].rsplit("/", 1)[1]
    asyncio.run(services.claims.keep(claim_token, user))  # a human answers for it now
    assert incident(platform, [version], certain=True) == ["loop"]
    assert services.provisioning.taints.list_all() == []
    assert work(client) == 80


def test_an_operator_lift_of_the_worker_clears_its_taint(
    client: TestClient, platform: Platform
) -> None:
    first = account(client)
    incident(platform, [deploy(client, first, "loop")], certain=True)
    assert work(client) == MAX_WORK
    platform.services.quarantine.lift(first["name"], "loop")
    assert work(client) == 80
    with platform.db.read() as conn:
        events = [e["event"] for e in audit.events_for(conn, first["id"])]
    assert "account.address_taint_cleared" in events


def test_admin_taint_list_and_clear(client: TestClient, platform: Platform) -> None:
    first = account(client)
    incident(platform, [deploy(client, first, "loop")], certain=True)
    runner = CliRunner()
    env = {"MAYFLY_DATA_DIR": str(platform.settings.data_dir)}
    listed = runner.invoke(cli, ["admin", "taint", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.stdout)["taints"]
    assert entry["address"] == "testclient" and entry["account_id"] == first["id"]
    assert entry["script"] == "loop" and entry["cleared_by"] is None
    text = runner.invoke(cli, ["admin", "taint", "list"], env=env)
    assert "testclient  until" in text.stdout

    cleared = runner.invoke(cli, ["admin", "taint", "clear", "testclient", "--json"], env=env)
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout)["cleared"] == {"address": "testclient", "taints": 1}
    assert work(client) == 80
    again = runner.invoke(cli, ["admin", "taint", "clear", "testclient"], env=env)
    assert again.exit_code == 1 and "is not tainted" in again.output
    ended = runner.invoke(cli, ["admin", "taint", "list", "--all", "--json"], env=env)
    assert json.loads(ended.stdout)["taints"][0]["cleared_by"] == "operator"
    with platform.db.read() as conn:
        (event,) = [
            e
            for e in audit.events_for(conn, first["id"])
            if e["event"] == "account.address_taint_cleared"
        ]
    assert event["actor"] == "operator"


def test_event_codes_from_a_tainted_address_cost_the_maximum_work_not_the_allowance(
    client: TestClient, platform: Platform
) -> None:
    event = platform.services.provisioning.events.create("Workshop", 5, 900)
    first = account(client)
    weak = challenge(client)
    incident(platform, [deploy(client, first, "loop")], certain=True)
    # A leaked code buys no cheaper work ...
    refused = create(client, weak, eventCode=event.code)
    assert refused.status_code == 403 and WHY in refused.json()["errors"][0]["message"]
    assert work(client) == MAX_WORK
    # ... but the room keeps working within the event's budget, beyond the address's 2 an hour.
    for _ in range(4):
        assert create(client, eventCode=event.code).status_code == 200
    account(client)
    assert create(client).status_code == 429


def test_the_platform_counts_taints_in_its_metrics(client: TestClient, platform: Platform) -> None:
    from mayfly.runtime.incidents import Incident

    first = account(client)
    version = deploy(client, first, "loop")

    async def report() -> None:
        await platform.handle_incident(Incident("memory", "shard 1", (version,), True, "RSS"))
        await asyncio.gather(*platform._background)

    asyncio.run(report())
    exposition = platform.services.ctx.metrics.exposition().decode()
    assert "mayfly_address_taints_total 1.0" in exposition


def test_taints_on_sqlite_and_postgresql(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    platform = Platform.create(
        make_settings(tmp_path, database_url=database_url, **POW), clock=clock
    )
    try:
        with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
            first = account(client)
            incident(platform, [deploy(client, first, "loop")], certain=True)
            assert work(client) == MAX_WORK
            account(client)
            assert create(client).status_code == 429
            platform.services.provisioning.taints.clear("testclient")
            assert work(client) == 80
            clock.advance(platform.settings.address_taint_seconds + 1)
            assert platform.services.provisioning.taints.purge() == 1
    finally:
        platform.db.dispose()
