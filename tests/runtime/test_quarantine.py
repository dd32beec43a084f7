"""A quarantined Worker answers 503 with Retry-After through the real data plane, from the moment
the incident is reported (every shard's cached route is dropped) until the quarantine ends (a
cached quarantine is never served past its end), while its neighbours keep serving; and a whole
account's quarantine, on every Worker of the account."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mayfly.runtime.incidents import Incident
from mayfly.services.operations.account_admin import AccountAdmin
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd
from tests.runtime.test_lifecycle import WHO, greeter

pytestmark = pytest.mark.runtime

COOLDOWN = 3.0
ACCOUNT_COOLDOWN = 5.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    settings = platform_settings(
        tmp_path_factory.mktemp("quarantine"),
        quarantine_cooldown=COOLDOWN,
        quarantine_account_cooldown=ACCOUNT_COOLDOWN,
    )
    # Routes cached for 10 minutes: only the invalidation and the quarantine's end can change
    # what a shard answers during this test.
    live = LivePlatform(settings, route_ttl=600.0)
    yield live
    live.close()


def test_quarantine_answers_503_with_retry_after_until_it_ends(live: LivePlatform) -> None:
    account = live.provision()
    offender = live.deploy(account, "offender", greeter("offender"), bindings=WHO)
    live.deploy(account, "neighbour", greeter("neighbour"), bindings=WHO)
    offender_host, neighbour_host = live.host(account, "offender"), live.host(account, "neighbour")
    for _ in range(6):  # both shards cache both routes
        assert live.get(offender_host).status_code == 200
        assert live.get(neighbour_host).status_code == 200

    live.loop.run(
        live.platform.handle_incident(
            Incident(
                kind="unresponsive",
                shard="shard 0 (pid 1)",
                suspects=(offender,),
                certain=True,
                detail="no answer to the health probe within 1.0 s",
            )
        )
    )
    live.wait_for(lambda: all(live.status(offender_host) == 503 for _ in range(6)))
    response = live.get(offender_host)
    assert response.status_code == 503
    assert response.headers["x-mayfly-error"] == "quarantined"
    assert 1 <= int(response.headers["retry-after"]) <= COOLDOWN
    assert "quarantined" in response.text
    assert "Try again in" in response.text
    for _ in range(6):
        assert live.get(neighbour_host).text == "neighbour world"

    live.wait_for(lambda: all(live.status(offender_host) == 200 for _ in range(6)), timeout=30)
    assert live.get(offender_host).text == "offender world"


def test_a_suspended_account_s_workers_answer_503_suspended_until_it_is_resumed(
    live: LivePlatform,
) -> None:
    account = live.provision()
    live.deploy(account, "paused", greeter("paused"), bindings=WHO)
    host = live.host(account, "paused")
    assert live.get(host).text == "paused world"
    admin = AccountAdmin(live.platform.services.ctx)

    _, hosts = admin.set_suspended(account["id"], True, reason="test")
    live.invalidate(hosts)
    response = live.get(host)
    assert response.status_code == 503
    assert response.headers["x-mayfly-error"] == "suspended"
    assert int(response.headers["retry-after"]) >= 1
    assert "suspended" in response.text

    _, hosts = admin.set_suspended(account["id"], False)
    live.invalidate(hosts)
    live.wait_for(lambda: all(live.status(host) == 200 for _ in range(6)))


def test_an_account_quarantine_answers_503_on_every_worker_of_the_account(
    live: LivePlatform,
) -> None:
    account, other = live.provision(), live.provision()
    offenders = [
        live.deploy(account, f"loop{i}", greeter(f"loop{i}"), bindings=WHO) for i in range(2)
    ]
    live.deploy(account, "bystander", greeter("bystander"), bindings=WHO)
    live.deploy(other, "neighbour", greeter("neighbour"), bindings=WHO)
    bystander, neighbour = live.host(account, "bystander"), live.host(other, "neighbour")
    for _ in range(6):  # both shards cache both routes
        assert live.get(bystander).status_code == 200
        assert live.get(neighbour).status_code == 200

    for version in offenders:
        live.loop.run(
            live.platform.handle_incident(
                Incident("unresponsive", "shard 0 (pid 1)", (version,), True, "no answer")
            )
        )
    # The Worker that never took a shard down is paused with its account, on every shard.
    live.wait_for(lambda: all(live.status(bystander) == 503 for _ in range(6)))
    response = live.get(bystander)
    assert response.headers["x-mayfly-error"] == "quarantined"
    assert "account is quarantined" in response.text
    assert 1 <= int(response.headers["retry-after"]) <= ACCOUNT_COOLDOWN
    for _ in range(6):
        assert live.get(neighbour).text == "neighbour world"

    live.wait_for(lambda: all(live.status(bystander) == 200 for _ in range(6)), timeout=30)
    assert live.get(bystander).text == "bystander world"
