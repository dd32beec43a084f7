"""A Worker's life through the real API and real shards: deploy, redeploy, rollback, disable,
delete, expiry. Every check is the very next request after the API call returned: no waiting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

GREET = "export default { fetch(request, env) { return new Response(%r + ' ' + env.WHO); } };"


def greeter(text: str) -> str:
    return GREET % text


WHO = [{"type": "plain_text", "name": "WHO", "text": "world"}]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("lifecycle")))
    yield live
    live.close()


def test_a_deployed_script_serves_at_its_host(live: LivePlatform) -> None:
    account = live.provision()
    live.deploy(account, "hello", greeter("hello"), bindings=WHO)
    response = live.get(live.host(account, "hello"))
    assert (response.status_code, response.text) == (200, "hello world")
    # Another account's name with the same script name is another Worker.
    assert live.get(f"hello.not-{account['name']}.localhost").status_code == 404


def test_a_redeploy_serves_the_new_code_on_the_next_request(live: LivePlatform) -> None:
    account = live.provision()
    host = live.host(account, "app")
    for n in range(3):
        live.deploy(account, "app", greeter(f"version {n}"), bindings=WHO)
        assert live.get(host).text == f"version {n} world"


def test_a_rollback_serves_the_old_version(live: LivePlatform) -> None:
    account = live.provision()
    host = live.host(account, "app")
    first = live.deploy(account, "app", greeter("first"), bindings=WHO)
    live.deploy(account, "app", greeter("second"), bindings=WHO)
    assert live.get(host).text == "second world"
    response = live.api.post(
        f"accounts/{account['id']}/workers/scripts/app/deployments",
        headers=auth(account["apiToken"]),
        json={"versions": [{"version_id": first, "percentage": 100}]},
    )
    assert response.status_code == 200, response.text
    assert live.get(host).text == "first world"


def test_a_disabled_worker_is_404_and_comes_back(live: LivePlatform) -> None:
    account = live.provision()
    host = live.host(account, "app")
    live.deploy(account, "app", greeter("on"), bindings=WHO)
    assert live.get(host).status_code == 200
    path = f"accounts/{account['id']}/workers/scripts/app/subdomain"
    for enabled, status in ((False, 404), (True, 200)):
        answer = live.api.post(path, headers=auth(account["apiToken"]), json={"enabled": enabled})
        assert answer.status_code == 200, answer.text
        assert live.get(host).status_code == status


def test_a_deleted_worker_is_404(live: LivePlatform) -> None:
    account = live.provision()
    host = live.host(account, "gone")
    live.deploy(account, "gone", greeter("here"), bindings=WHO)
    assert live.get(host).status_code == 200
    response = live.api.delete(
        f"accounts/{account['id']}/workers/scripts/gone", headers=auth(account["apiToken"])
    )
    assert response.status_code == 200, response.text
    after = live.get(host)
    assert after.status_code == 404
    assert "No Worker is served" in after.text


def internal_route(live: LivePlatform, host: str) -> dict[str, object]:
    response = httpx.get(
        f"http://127.0.0.1:{live.internal_port}/internal/v1/route",
        params={"host": host},
        headers={"x-mayfly-internal-secret": live.platform.internal_secret},
    )
    answer: dict[str, object] = response.json()
    return answer


def test_an_expired_account_is_410_at_request_time_without_the_reaper(
    live: LivePlatform,
) -> None:
    """The data plane compares expires_at with its own clock on every request: here the control
    plane's clock runs 10 minutes late, so its route still says "ok" when the Worker answers 410."""
    ttl = live.settings.temporary_ttl
    live.clock.offset = -timedelta(seconds=ttl - 4)  # provisioned now, expires in 4 s
    try:
        account = live.provision()
    finally:
        live.clock.offset = -timedelta(minutes=10)
    try:
        host = live.host(account, "brief")
        live.deploy(account, "brief", greeter("still here"), bindings=WHO)
        assert live.get(host).status_code == 200
        expires_at_ms = internal_route(live, host)["expires_at_ms"]
        assert isinstance(expires_at_ms, int)
        live.wait_for(lambda: time.time() * 1000 > expires_at_ms, timeout=30)  # by the clock
        response = live.get(host)
        assert response.status_code == 410
        assert "temporary deployment expired" in response.text
        assert internal_route(live, host)["status"] == "ok"
    finally:
        live.clock.offset = timedelta(0)


def test_a_reaped_account_is_410(live: LivePlatform) -> None:
    account = live.provision()
    host = live.host(account, "reaped")
    live.deploy(account, "reaped", greeter("alive"), bindings=WHO)
    assert live.get(host).status_code == 200
    live.clock.offset = timedelta(seconds=live.settings.temporary_ttl + 1)
    try:
        assert live.loop.run(live.platform.services.reaper.run_once()) >= 1
    finally:
        live.clock.offset = timedelta(0)
    assert internal_route(live, host)["status"] == "expired"  # a tombstone now
    response = live.get(host)
    assert response.status_code == 410
    assert "expired" in response.text
