"""The cold path without a round trip: every change pushes the new route (and a small Worker's
code) to the shards with its invalidation, and a shard starts with a snapshot of the live routes,
so a Worker's first request asks the control plane nothing. The guarantee stays: each change is
served on the very next request, here with route caches that would otherwise last 10 minutes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.conftest import auth, provision
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd
from tests.runtime.test_lifecycle import WHO, greeter

pytestmark = pytest.mark.runtime

LOOKUPS = ("/internal/v1/route", "/internal/v1/versions/")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("cold")), route_ttl=600.0)
    yield live
    live.close()


def lookups(live: LivePlatform) -> int:
    """Route and code requests the shards made of the control plane so far."""
    return sum(path.startswith(LOOKUPS) for path in live.internal.paths)


def test_a_new_workers_first_request_asks_the_control_plane_nothing(live: LivePlatform) -> None:
    account = live.provision()
    live.deploy(account, "fresh", greeter("fresh"), bindings=WHO)
    before = lookups(live)
    for shard in range(2 * live.settings.shards):  # new connections: each shard, likely
        response = live.get(live.host(account, "fresh"), f"/{shard}")
        assert (response.status_code, response.text) == (200, "fresh world")
    assert lookups(live) == before


def test_every_change_is_served_on_the_next_request_without_asking(live: LivePlatform) -> None:
    account = live.provision()
    host = live.host(account, "app")
    token = auth(account["apiToken"])
    script = f"accounts/{account['id']}/workers/scripts/app"
    before = lookups(live)

    first = live.deploy(account, "app", greeter("first"), bindings=WHO)
    assert live.get(host).text == "first world"
    live.deploy(account, "app", greeter("second"), bindings=WHO)
    assert live.get(host).text == "second world"
    rollback = live.api.post(
        f"{script}/deployments",
        headers=token,
        json={"versions": [{"version_id": first, "percentage": 100}]},
    )
    assert rollback.status_code == 200, rollback.text
    assert live.get(host).text == "first world"
    for enabled, status in ((False, 404), (True, 200)):
        answer = live.api.post(f"{script}/subdomain", headers=token, json={"enabled": enabled})
        assert answer.status_code == 200, answer.text
        assert live.get(host).status_code == status
    assert live.api.delete(script, headers=token).status_code == 200
    assert live.get(host).status_code == 404
    assert lookups(live) == before


def test_a_claim_and_an_expiry_are_served_on_the_next_request(live: LivePlatform) -> None:
    created = provision(live.api)
    temp = created["account"]
    live.deploy(temp, "hello", greeter("hello"), bindings=WHO)
    old_host = live.host(temp, "hello")
    assert live.get(old_host).text == "hello world"
    services = live.platform.services
    user = services.users.sign_up("cold@example.com", "correct horse battery staple")
    target = services.memberships.create_account(user, "cold-acme")
    live.loop.run(services.claims.move(created["claim"]["url"].rsplit("/", 1)[1], user, target.id))
    assert live.get(old_host).headers["x-mayfly-error"] == "moved"
    assert live.get(live.host({"name": target.name}, "hello")).text == "hello world"

    doomed = live.provision()
    host = live.host(doomed, "short")
    live.deploy(doomed, "short", greeter("short"), bindings=WHO)
    assert live.get(host).status_code == 200
    live.clock.offset = timedelta(seconds=live.settings.temporary_ttl + 1)
    try:
        assert live.loop.run(services.reaper.run_once()) >= 1
    finally:
        live.clock.offset = timedelta(0)
    assert live.get(host).status_code == 410


def test_an_older_push_never_replaces_a_newer_one(live: LivePlatform) -> None:
    """Messages are numbered before the route they carry is read: one that arrives late (read
    before a deploy whose own message already arrived) is ignored."""
    assert live.dp is not None
    account = live.provision()
    host = live.host(account, "race")
    live.deploy(account, "race", greeter("old"), bindings=WHO)
    late = live.dp.next_seq()
    stale = live.platform.services.routing.route_with_code(host)
    live.deploy(account, "race", greeter("new"), bindings=WHO)
    live.loop.run(live.dp.invalidate([host], {host: stale}, late))
    assert live.get(host).text == "new world"


def test_a_new_shard_starts_with_the_live_routes(live: LivePlatform) -> None:
    account = live.provision()
    live.deploy(account, "later", greeter("later"), bindings=WHO)
    assert live.dp is not None
    for slot in range(live.settings.shards):
        live.loop.run(live.dp.recycle(slot, "test"))
    before = lookups(live)
    assert live.get(live.host(account, "later")).text == "later world"
    # the routes came with the snapshot; the code is asked once (at most once per shard)
    assert not any(p.startswith(LOOKUPS[0]) for p in live.internal.paths[before:])
    assert lookups(live) - before <= live.settings.shards


def test_a_change_the_server_was_not_told_of_is_pushed_by_the_reconcile(
    live: LivePlatform,
) -> None:
    """`mayfly admin account suspend` on SQLite is another process: no invalidation reaches the
    server. The server reads the live routes again every few seconds and pushes what changed."""
    from mayfly.services.operations.account_admin import AccountAdmin

    pusher = live.platform.route_pusher
    assert pusher is not None
    account = live.provision()
    host = live.host(account, "ops")
    live.deploy(account, "ops", greeter("ops"), bindings=WHO)
    assert live.get(host).status_code == 200
    live.loop.run(pusher.reconcile())  # the routes as they are now
    admin = AccountAdmin(live.platform.services.ctx)
    admin.set_suspended(account["name"], True)
    assert live.get(host).status_code == 200  # not told: every shard serves the pushed route
    assert live.loop.run(pusher.reconcile()) == [host]
    assert live.get(host).status_code == 503
    # A suspended Worker's route is not pushed: a shard asks when it is requested, so which answer
    # a shard holds before the next reconcile depends on whether it was asked; after it, each
    # serves the Worker again.
    admin.set_suspended(account["name"], False)
    assert live.loop.run(pusher.reconcile()) == [host]
    for shard in range(2 * live.settings.shards):
        assert live.get(host, f"/{shard}").status_code == 200


def test_a_worker_suspended_before_any_reconcile_saw_it_is_still_pushed(
    live: LivePlatform,
) -> None:
    """The deploy pushed the route; the reconcile must compare with that, not with the routes of
    its own last read, or a suspension right after a deploy would never reach the shards."""
    from mayfly.services.operations.account_admin import AccountAdmin

    pusher = live.platform.route_pusher
    assert pusher is not None
    live.loop.run(pusher.reconcile())
    account = live.provision()
    host = live.host(account, "quick")
    live.deploy(account, "quick", greeter("quick"), bindings=WHO)
    assert live.get(host).status_code == 200
    AccountAdmin(live.platform.services.ctx).set_suspended(account["name"], True)
    assert live.loop.run(pusher.reconcile()) == [host]
    assert live.get(host).status_code == 503
