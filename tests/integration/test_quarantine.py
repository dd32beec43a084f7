"""Quarantine: the rule that turns data-plane incidents into quarantined Workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.core import audit
from mayfly.services.workers.quarantine import cooldown_seconds
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, upload_body


def deploy(client: TestClient, account: dict[str, Any], script: str) -> str:
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/{script}",
        headers=auth(account["apiToken"]),
        **upload_body(),
    )
    assert response.status_code == 200, response.text
    version_id: str = response.json()["result"]["deployment_id"]
    return version_id


def incident(
    platform: Platform, suspects: list[str], *, certain: bool, kind: str = "unresponsive"
) -> list[str]:
    """Report one incident; returns the scripts it quarantined."""
    outcome = platform.services.quarantine.record_incident(
        kind=kind,
        shard="shard 0 (pid 1)",
        suspects=suspects,
        certain=certain,
        detail="no answer to the probe within 1.0 s",
    )
    return [q.script for q in outcome.started]


def test_a_certain_incident_quarantines_at_once_and_audits(
    client: TestClient, platform: Platform
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    assert incident(platform, [version], certain=True) == ["loop"]
    found = platform.services.quarantine.active(account["id"], "loop")
    assert found is not None
    assert found.version_id == version
    assert found.strikes == 1
    assert (found.until - found.started_at).total_seconds() == 60
    with platform.db.read() as conn:
        events = [
            e for e in audit.events_for(conn, account["id"]) if e["event"].startswith("worker.")
        ]
    assert len(events) == 1
    entry = events[0]
    assert entry["event"] == "worker.quarantined"
    assert entry["actor"] == "data-plane"
    assert entry["details"]["version_id"] == version
    assert entry["details"]["kind"] == "unresponsive"
    assert entry["details"]["detail"] == "no answer to the probe within 1.0 s"
    assert entry["details"]["script"] == "loop"


def test_an_innocent_suspect_of_one_ambiguous_incident_is_not_quarantined(
    client: TestClient, platform: Platform
) -> None:
    account = provision(client)["account"]
    offender, neighbour = deploy(client, account, "loop"), deploy(client, account, "good")
    assert incident(platform, [offender, neighbour], certain=False) == []
    assert platform.services.quarantine.active(account["id"], "loop") is None
    assert platform.services.quarantine.active(account["id"], "good") is None


def test_a_prime_suspect_of_two_ambiguous_incidents_is_quarantined_its_neighbour_never(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    offender, neighbour = deploy(client, account, "loop"), deploy(client, account, "good")
    assert incident(platform, [offender, neighbour], certain=False) == []
    clock.advance(30)
    assert incident(platform, [offender, neighbour], certain=False) == ["loop"]
    # The neighbour was in flight both times, never the prime suspect: never quarantined.
    clock.advance(120)
    for _ in range(3):
        incident(platform, [offender, neighbour], certain=False)
        clock.advance(5)
    assert platform.services.quarantine.active(account["id"], "good") is None


def test_a_neighbour_prime_suspect_once_by_a_race_is_not_quarantined(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    offender, neighbour = deploy(client, account, "loop"), deploy(client, account, "good")
    # Its request started just after the offender's, before the loop began: prime suspect once.
    assert incident(platform, [neighbour, offender], certain=False) == []
    clock.advance(30)
    assert incident(platform, [offender, neighbour], certain=False) == []
    assert platform.services.quarantine.active(account["id"], "good") is None
    clock.advance(30)
    assert incident(platform, [offender, neighbour], certain=False) == ["loop"]
    assert platform.services.quarantine.active(account["id"], "good") is None


def test_ambiguous_incidents_further_apart_than_the_window_do_not_add_up(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    offender, neighbour = deploy(client, account, "loop"), deploy(client, account, "good")
    assert incident(platform, [offender, neighbour], certain=False) == []
    clock.advance(platform.settings.quarantine_window + 1)
    assert incident(platform, [offender, neighbour], certain=False) == []


def test_repeats_double_the_cooldown_up_to_the_maximum(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    quarantine = platform.services.quarantine
    for seconds in [60, 120, 240, 480, 960, 1920, 3600, 3600]:
        assert incident(platform, [version], certain=True) == ["loop"]
        found = quarantine.active(account["id"], "loop")
        assert found is not None
        assert (found.until - found.started_at).total_seconds() == seconds
        clock.advance(seconds + 1)
        assert quarantine.active(account["id"], "loop") is None


def test_an_incident_during_a_quarantine_adds_no_strike(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    assert incident(platform, [version], certain=True) == ["loop"]
    clock.advance(1)
    assert incident(platform, [version], certain=True) == []
    found = platform.services.quarantine.active(account["id"], "loop")
    assert found is not None and found.strikes == 1


def test_strikes_decay_after_a_quiet_period(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    quarantine = platform.services.quarantine
    for _ in range(3):  # 60, 120, 240
        incident(platform, [version], certain=True)
        found = quarantine.active(account["id"], "loop")
        assert found is not None
        clock.advance(found.seconds_left(clock.now()) + 1)
    # Two quiet decay periods forgive two of the three strikes: the next one is the second.
    clock.advance(2 * platform.settings.quarantine_decay)
    incident(platform, [version], certain=True)
    found = quarantine.active(account["id"], "loop")
    assert found is not None
    assert found.strikes == 2
    assert (found.until - found.started_at).total_seconds() == 120


def test_lift_ends_it_now_and_forgives(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    quarantine = platform.services.quarantine
    incident(platform, [version], certain=True)
    lifted, host = quarantine.lift(account["name"], "loop", actor="operator")
    assert lifted.version_id == version
    assert host.startswith(f"loop.{account['name']}.")
    assert quarantine.active(account["id"], "loop") is None
    incident(platform, [version], certain=True)
    found = quarantine.active(account["id"], "loop")
    assert found is not None and found.strikes == 1
    with platform.db.read() as conn:
        events = [e["event"] for e in audit.events_for(conn, account["id"])]
    assert events.count("worker.quarantined") == 2
    assert events.count("worker.quarantine_lifted") == 1


def test_unknown_versions_are_ignored(platform: Platform) -> None:
    assert incident(platform, ["no-such-version"], certain=True) == []


def test_cooldown_formula() -> None:
    assert [cooldown_seconds(n, 60, 3600) for n in (1, 2, 3, 7, 50, 10_000)] == [
        60,
        120,
        240,
        3600,
        3600,
        3600,
    ]


def test_the_reaper_deletes_an_expired_accounts_quarantines(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    from sqlalchemy import select

    from mayfly.storage.tables import incidents, quarantines

    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    incident(platform, [version], certain=True)
    clock.advance(platform.settings.temporary_ttl + 1)
    assert platform.services.reaper.reap_account(account["id"]) is not None
    with platform.db.read() as conn:
        for table in (incidents, quarantines):
            assert (
                conn.execute(select(table).where(table.c.account_id == account["id"])).all() == []
            )


def test_the_internal_route_answer_says_quarantined_until_when(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    host = f"loop.{account['name']}.localhost"
    with TestClient(
        platform.internal_app(),
        base_url="http://internal/internal/v1/",
        headers={"x-mayfly-internal-secret": platform.internal_secret},
    ) as internal:
        assert internal.get("route", params={"host": host}).json()["status"] == "ok"
        incident(platform, [version], certain=True)
        route = internal.get("route", params={"host": host}).json()
        assert route["status"] == "quarantined"
        assert route["script"] == "loop"
        until_ms = (clock.now().timestamp() + 60) * 1000
        assert abs(route["quarantined_until_ms"] - until_ms) < 1000
        assert "quarantined" in route["message"]
        clock.advance(61)
        assert internal.get("route", params={"host": host}).json()["status"] == "ok"


def test_api_calls_that_touch_a_quarantined_worker_answer_10060(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    deploy(client, account, "good")
    incident(platform, [version], certain=True)
    base = f"accounts/{account['id']}/workers"
    headers = auth(account["apiToken"])
    calls = [
        client.put(f"{base}/scripts/loop", headers=headers, **upload_body()),
        client.post(f"{base}/scripts/loop/versions", headers=headers, **upload_body()),
        client.post(
            f"{base}/scripts/loop/deployments",
            headers=headers,
            json={"versions": [{"version_id": version, "percentage": 100}]},
        ),
        client.get(f"{base}/services/loop", headers=headers),
        client.get(f"{base}/workers/loop", headers=headers),
        client.get(f"{base}/scripts/loop/settings", headers=headers),
        client.patch(f"{base}/scripts/loop/script-settings", headers=headers, json={"tags": []}),
        client.put(
            f"{base}/scripts/loop/secrets",
            headers=headers,
            json={"name": "S", "text": "x", "type": "secret_text"},
        ),
    ]
    for response in calls:
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["success"] is False
        assert body["errors"][0]["code"] == 10060
        message = body["errors"][0]["message"]
        assert "'loop' is quarantined until" in message
        assert version in message
        assert 1 <= int(response.headers["retry-after"]) <= 60
    # Its neighbour, and the quarantined Worker's history, stay reachable.
    assert client.get(f"{base}/services/good", headers=headers).status_code == 200
    assert client.get(f"{base}/scripts/loop/versions", headers=headers).status_code == 200
    clock.advance(61)
    assert client.put(f"{base}/scripts/loop", headers=headers, **upload_body()).status_code == 200


def test_the_account_shows_its_quarantined_workers(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    headers = auth(account["apiToken"])
    shown = client.get(f"accounts/{account['id']}", headers=headers).json()["result"]
    assert shown["mayfly"]["quarantined"] == []
    incident(platform, [version], certain=True, kind="memory")
    for result in (
        client.get(f"accounts/{account['id']}", headers=headers).json()["result"],
        client.get("accounts", headers=headers).json()["result"][0],
    ):
        (entry,) = result["mayfly"]["quarantined"]
        assert entry["script"] == "loop"
        assert entry["version_id"] == version
        assert entry["kind"] == "memory"
        assert entry["seconds_left"] == 60
        assert entry["strikes"] == 1
        assert "outgrow its memory budget" in entry["reason"]
        assert entry["until"].endswith("Z")
    clock.advance(61)
    shown = client.get(f"accounts/{account['id']}", headers=headers).json()["result"]
    assert shown["mayfly"]["quarantined"] == []


def test_the_dashboard_shows_a_quarantined_worker(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_claim_support import cheap_password_hashing, claim_path, web

    cheap_password_hashing(monkeypatch)
    created = provision(client)
    account = created["account"]
    version = deploy(client, account, "loop")
    deploy(client, account, "good")
    path = claim_path(created)
    with web(platform) as browser:
        browser.get(path)
        browser.signup("ada@example.com", next_url=path)
        assert browser.post(path, {"action": "keep"}, page=path).status_code == 303
        assert "quarantined" not in browser.get("/dashboard").text
        incident(platform, [version], certain=True)
        for page in ("/dashboard", f"/dashboard/accounts/{account['id']}"):
            text = browser.get(page).text
            assert text.count('class="badge quarantined"') == 1, page
            assert "Answers 503 until" in text
            assert f"version {version} froze the shard" in text


def test_the_rule_on_sqlite_and_postgresql(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    db_platform = Platform.create(make_settings(tmp_path, database_url=database_url), clock=clock)
    try:
        with TestClient(db_platform.public_app(), base_url="http://t/client/v4/") as api:
            account = provision(api)["account"]
            offender, neighbour = deploy(api, account, "loop"), deploy(api, account, "good")
            assert incident(db_platform, [offender, neighbour], certain=False) == []
            clock.advance(10)
            assert incident(db_platform, [offender, neighbour], certain=False) == ["loop"]
            clock.advance(61)
            assert incident(db_platform, [offender], certain=True) == ["loop"]
            found = db_platform.services.quarantine.active(account["id"], "loop")
            assert found is not None and found.strikes == 2
            assert db_platform.services.quarantine.active(account["id"], "good") is None
            routes = db_platform.services.routing
            assert routes.route(f"loop.{account['name']}.localhost").status == "quarantined"
            assert routes.route(f"good.{account['name']}.localhost").status == "ok"
            assert [q.script for q, _ in db_platform.services.quarantine.list_all()] == ["loop"]
    finally:
        db_platform.db.dispose()


def test_the_platform_quarantines_on_an_incident_and_invalidates_the_host(
    client: TestClient, platform: Platform
) -> None:
    import asyncio

    from mayfly.runtime.incidents import Incident

    invalidated: list[list[str]] = []

    class Recording:
        async def invalidate(self, hosts: list[str]) -> None:
            invalidated.append(hosts)

    account = provision(client)["account"]
    version = deploy(client, account, "loop")
    platform.set_invalidator(Recording())

    async def report(incident: Incident) -> None:
        await platform.handle_incident(incident)
        await asyncio.gather(*platform._background)

    asyncio.run(report(Incident("memory", "shard 1", (version,), True, "RSS 1100 MiB > 1024 MiB")))
    assert invalidated == [[f"loop.{account['name']}.localhost"]]
    # Nothing to blame (an unknown version, or no suspect at all): nothing happens, nothing raises.
    asyncio.run(report(Incident("crashed", "shard 0", ("gone",), True, "exited with 134")))
    asyncio.run(report(Incident("crashed", "shard 0", (), False, "exited with 134")))
    assert len(invalidated) == 1


def test_a_claim_that_moves_the_worker_keeps_its_quarantine(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from tests.integration.test_claim_support import cheap_password_hashing

    cheap_password_hashing(monkeypatch)
    created = provision(client)
    account = created["account"]
    version = deploy(client, account, "loop")
    incident(platform, [version], certain=True)
    services = platform.services
    user = services.users.sign_up("ada@example.com", "correct horse battery staple")
    target = services.memberships.create_account(user, "acme")
    claim_token = created["claim"]["url"].rsplit("/", 1)[1]
    asyncio.run(services.claims.move(claim_token, user, target.id))
    assert services.quarantine.active(account["id"], "loop") is None
    moved = services.quarantine.active(target.id, "loop")
    assert moved is not None and moved.version_id == version


# -- the account answers for its Workers ----------------------------------------------------------


def account_incidents(
    platform: Platform, versions: list[str], clock: ManualClock, *, apart: float = 30
) -> list[str]:
    """One certain incident per version, `apart` seconds apart; returns the accounts (ids) the
    last one quarantined."""
    outcome = None
    for version in versions:
        clock.advance(apart)
        outcome = platform.services.quarantine.record_incident(
            kind="unresponsive",
            shard="shard 0 (pid 1)",
            suspects=[version],
            certain=True,
            detail="no answer to the probe within 1.0 s",
        )
    assert outcome is not None
    return [a.account_id for a in outcome.accounts]


def test_the_same_code_under_new_names_quarantines_the_whole_account(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    base = f"accounts/{account['id']}/workers"
    headers = auth(account["apiToken"])
    good = deploy(client, account, "good")
    first = deploy(client, account, "loop1")
    assert account_incidents(platform, [first], clock) == []
    # Deleting a guilty Worker does not take back its verdict: the second name is one too many.
    assert client.delete(f"{base}/scripts/loop1", headers=headers).status_code == 200
    second = deploy(client, account, "loop2")
    assert account_incidents(platform, [second], clock) == [account["id"]]

    quarantine = platform.services.quarantine
    whole = quarantine.active_account(account["id"])
    assert whole is not None
    assert whole.scripts == ("loop1", "loop2")
    assert whole.strikes == 1
    assert (whole.until - whole.started_at).total_seconds() == 600
    with platform.db.read() as conn:
        (entry,) = [
            e for e in audit.events_for(conn, account["id"]) if e["event"] == "account.quarantined"
        ]
    assert entry["actor"] == "data-plane"
    assert entry["details"]["scripts"] == ["loop1", "loop2"]
    assert entry["details"]["seconds"] == 600

    # Every Worker answers 503 quarantined, the innocent one of the account too.
    routes = platform.services.routing
    route = routes.route(f"good.{account['name']}.localhost")
    assert route.status == "quarantined"
    assert route.quarantined_until == whole.until
    assert "account is quarantined" in route.message
    assert routes.route(f"loop2.{account['name']}.localhost").status == "quarantined"
    live = routes.live_routes()
    assert live is not None
    assert not [h for h in live if h.endswith(f".{account['name']}.localhost")]

    # Nothing can be uploaded or deployed, under a new name or an old one.
    calls = [
        client.put(f"{base}/scripts/loop3", headers=headers, **upload_body()),
        client.put(f"{base}/scripts/loop1", headers=headers, **upload_body()),
        client.post(f"{base}/scripts/good/versions", headers=headers, **upload_body()),
        client.post(
            f"{base}/scripts/good/deployments",
            headers=headers,
            json={"versions": [{"version_id": good, "percentage": 100}]},
        ),
    ]
    for response in calls:
        assert response.status_code == 503, response.text
        error = response.json()["errors"][0]
        assert error["code"] == 10060
        assert f"Account '{account['name']}' is quarantined until" in error["message"]
        assert "2 of its Workers (loop1, loop2)" in error["message"]
        assert "a new Worker name" in error["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 600

    shown = client.get(f"accounts/{account['id']}", headers=headers).json()["result"]["mayfly"]
    assert shown["account_quarantine"]["scripts"] == ["loop1", "loop2"]
    assert shown["account_quarantine"]["seconds_left"] == 600
    assert shown["account_quarantine"]["strikes"] == 1

    # An incident meanwhile (another shard fell before the quarantine reached it) adds nothing.
    assert account_incidents(platform, [good], clock, apart=1) == []
    assert quarantine.active(account["id"], "good") is None

    clock.advance(600)
    assert quarantine.active_account(account["id"]) is None
    assert routes.route(f"good.{account['name']}.localhost").status == "ok"
    assert client.put(f"{base}/scripts/loop3", headers=headers, **upload_body()).status_code == 200
    shown = client.get(f"accounts/{account['id']}", headers=headers).json()["result"]["mayfly"]
    assert shown["account_quarantine"] is None


def test_a_repeat_doubles_the_account_cooldown_and_needs_new_verdicts(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    names = [f"loop{i}" for i in range(4)]
    versions = [deploy(client, account, name) for name in names]
    assert account_incidents(platform, versions[:2], clock) == [account["id"]]
    clock.advance(601)
    # The two verdicts that started it are spent: one more guilty Worker is not a repeat yet.
    assert account_incidents(platform, versions[2:3], clock) == []
    assert account_incidents(platform, versions[3:], clock) == [account["id"]]
    whole = platform.services.quarantine.active_account(account["id"])
    assert whole is not None
    assert whole.strikes == 2
    assert whole.scripts == ("loop2", "loop3")
    assert (whole.until - whole.started_at).total_seconds() == 1200


def test_ambiguous_incidents_never_quarantine_an_innocent_account(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    offender = provision(client)["account"]
    neighbour = provision(client)["account"]
    innocent = [deploy(client, neighbour, f"app{i}") for i in range(4)]
    quarantine = platform.services.quarantine
    # The offender rotates names, and every kill also finds a Worker of the neighbour in flight.
    for i in range(2):
        loop = deploy(client, offender, f"loop{i}")
        for _ in range(2):
            clock.advance(20)
            incident(platform, [loop, innocent[i]], certain=False)
    assert quarantine.active_account(offender["id"]) is not None
    assert quarantine.active_account(neighbour["id"]) is None
    assert all(quarantine.active(neighbour["id"], f"app{i}") is None for i in range(4))
    # A suspect the rule did not quarantine (one ambiguous incident each, even as the prime
    # suspect) is no verdict, however many of the account's Workers are suspects.
    clock.advance(platform.settings.quarantine_window + 1)
    for version in innocent:
        clock.advance(20)
        assert incident(platform, [version], certain=False) == []
    assert quarantine.active_account(neighbour["id"]) is None
    assert routes_ok(platform, neighbour, [f"app{i}" for i in range(4)])


def routes_ok(platform: Platform, account: dict[str, Any], scripts: list[str]) -> bool:
    routing = platform.services.routing
    return all(
        routing.route(f"{script}.{account['name']}.localhost").status == "ok" for script in scripts
    )


def test_deleting_and_recreating_a_quarantined_worker_keeps_its_quarantine_and_history(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    base = f"accounts/{account['id']}/workers"
    headers = auth(account["apiToken"])
    version = deploy(client, account, "loop")
    assert incident(platform, [version], certain=True) == ["loop"]
    assert client.delete(f"{base}/scripts/loop", headers=headers).status_code == 200
    again = client.put(f"{base}/scripts/loop", headers=headers, **upload_body())
    assert again.status_code == 503
    assert again.json()["errors"][0]["code"] == 10060
    assert platform.services.quarantine.active(account["id"], "loop") is not None
    clock.advance(61)
    recreated = deploy(client, account, "loop")
    assert incident(platform, [recreated], certain=True) == ["loop"]
    found = platform.services.quarantine.active(account["id"], "loop")
    assert found is not None
    assert found.strikes == 2  # the deleted Worker's strike counts
    assert (found.until - found.started_at).total_seconds() == 120


def test_an_operator_lifts_an_account_quarantine(
    client: TestClient, platform: Platform, clock: ManualClock
) -> None:
    account = provision(client)["account"]
    versions = [deploy(client, account, f"loop{i}") for i in range(2)]
    account_incidents(platform, versions, clock)
    quarantine = platform.services.quarantine
    lifted, hosts = quarantine.lift_account(account["name"], actor="operator")
    assert lifted.scripts == ("loop0", "loop1")
    assert sorted(hosts) == [f"loop{i}.{account['name']}.localhost" for i in range(2)]
    assert quarantine.active_account(account["id"]) is None
    # Its Workers' own quarantines stay (the last one's is still running).
    assert quarantine.active(account["id"], "loop1") is not None
    with platform.db.read() as conn:
        events = [e["event"] for e in audit.events_for(conn, account["id"])]
    assert events.count("account.quarantine_lifted") == 1
    with pytest.raises(Exception, match="not quarantined"):
        quarantine.lift_account(account["id"])


def test_an_account_quarantine_invalidates_every_host_of_the_account(
    client: TestClient, platform: Platform
) -> None:
    import asyncio

    from mayfly.runtime.incidents import Incident

    invalidated: list[list[str]] = []

    class Recording:
        async def invalidate(self, hosts: list[str]) -> None:
            invalidated.append(hosts)

    account = provision(client)["account"]
    deploy(client, account, "good")
    versions = [deploy(client, account, f"loop{i}") for i in range(2)]
    platform.set_invalidator(Recording())

    async def report(incident: Incident) -> None:
        await platform.handle_incident(incident)
        await asyncio.gather(*platform._background)

    for version in versions:
        asyncio.run(report(Incident("unresponsive", "shard 0", (version,), True, "frozen")))
    suffix = f".{account['name']}.localhost"
    assert invalidated[0] == [f"loop0{suffix}"]
    assert sorted(invalidated[1]) == [f"{n}{suffix}" for n in ["good", "loop0", "loop1"]]


def test_a_quarantined_account_cannot_be_claimed_away_from_its_quarantine(
    client: TestClient, platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from mayfly.errors import Quarantined
    from tests.integration.test_claim_support import cheap_password_hashing

    cheap_password_hashing(monkeypatch)
    created = provision(client)
    account = created["account"]
    versions = [deploy(client, account, f"loop{i}") for i in range(2)]
    account_incidents(platform, versions, clock)
    services = platform.services
    user = services.users.sign_up("ada@example.com", "correct horse battery staple")
    target = services.memberships.create_account(user, "acme")
    claim_token = created["claim"]["url"].rsplit("/", 1)[1]
    with pytest.raises(Quarantined, match="is quarantined until"):
        asyncio.run(services.claims.move(claim_token, user, target.id))
    # Kept as it is, the account keeps its quarantine.
    asyncio.run(services.claims.keep(claim_token, user))
    assert services.quarantine.active_account(account["id"]) is not None


def test_the_dashboard_shows_an_account_quarantine(
    client: TestClient, platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_claim_support import cheap_password_hashing, claim_path, web

    cheap_password_hashing(monkeypatch)
    created = provision(client)
    account = created["account"]
    versions = [deploy(client, account, f"loop{i}") for i in range(2)]
    path = claim_path(created)
    with web(platform) as browser:
        browser.get(path)
        browser.signup("ada@example.com", next_url=path)
        assert browser.post(path, {"action": "keep"}, page=path).status_code == 303
        assert "account quarantined" not in browser.get("/dashboard").text
        account_incidents(platform, versions, clock)
        for page in ("/dashboard", f"/dashboard/accounts/{account['id']}"):
            text = browser.get(page).text
            assert text.count("account quarantined</span>") == 1, page
            assert "Every Worker of this account answers 503" in text
            assert "2 of its Workers (loop0, loop1)" in text


def test_the_account_rule_on_sqlite_and_postgresql(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    db_platform = Platform.create(make_settings(tmp_path, database_url=database_url), clock=clock)
    try:
        with TestClient(db_platform.public_app(), base_url="http://t/client/v4/") as api:
            account = provision(api)["account"]
            deploy(api, account, "good")
            versions = [deploy(api, account, f"loop{i}") for i in range(2)]
            assert account_incidents(db_platform, versions, clock) == [account["id"]]
            quarantine, routes = db_platform.services.quarantine, db_platform.services.routing
            (listed, name), *_ = quarantine.list_accounts()
            assert name == account["name"] and listed.scripts == ("loop0", "loop1")
            assert routes.route(f"good.{account['name']}.localhost").status == "quarantined"
            assert f"good.{account['name']}.localhost" not in (routes.live_routes() or {})
            shown = api.get(f"accounts/{account['id']}", headers=auth(account["apiToken"]))
            assert shown.json()["result"]["mayfly"]["account_quarantine"]["strikes"] == 1
            quarantine.lift_account(account["name"])
            assert routes.route(f"good.{account['name']}.localhost").status == "ok"
            assert f"good.{account['name']}.localhost" in (routes.live_routes() or {})
            assert [q.lifted_by for q, _ in quarantine.list_accounts(include_ended=True)] == [
                "operator"
            ]
    finally:
        db_platform.db.dispose()
