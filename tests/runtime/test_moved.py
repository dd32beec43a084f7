"""A temporary account claimed by moving its Workers into another account: the old URL answers
410 with the route's message naming the new URL, and the new URL serves, on the next request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import provision
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd
from tests.runtime.test_lifecycle import WHO, greeter

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("moved")))
    yield live
    live.close()


def test_a_moved_worker_is_410_with_its_new_url(live: LivePlatform) -> None:
    created = provision(live.api)
    temp = created["account"]
    claim_token = created["claim"]["url"].rsplit("/", 1)[1]
    live.deploy(temp, "hello", greeter("hello"), bindings=WHO)
    old_host = live.host(temp, "hello")
    assert live.get(old_host).text == "hello world"

    services = live.platform.services
    user = services.users.sign_up("ada@example.com", "correct horse battery staple")
    target = services.memberships.create_account(user, "acme")
    live.loop.run(services.claims.move(claim_token, user, target.id))

    response = live.get(old_host)
    new_url = services.ctx.worker_url("hello", "acme")
    assert response.status_code == 410
    assert response.headers["x-mayfly-error"] == "moved"
    assert "location" not in response.headers
    assert response.text == f"This Worker was claimed and moved; it now lives at {new_url}\n"
    assert live.get(live.host({"name": target.name}, "hello")).text == "hello world"
    # Another script name under the old account was never there.
    assert live.get(live.host(temp, "other")).status_code == 404
