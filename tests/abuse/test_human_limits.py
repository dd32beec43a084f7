"""Abuse of the human side, in process: lock-outs that spare the owner, limits per address group
(IPv6 by /64) on sign-up, log-in, device codes and provisioning, and a bounded password pool."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.errors import RateLimited
from mayfly.services.identity.passwords import PasswordPool
from tests.clock import ManualClock
from tests.conftest import make_settings
from tests.integration.test_claim_support import PASSWORD, Web, cheap_password_hashing

OWNER = "owner@example.com"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@contextmanager
def browser(platform: Platform, address: str) -> Iterator[Web]:
    """A browser connecting from `address` (the peer uvicorn would report)."""
    with TestClient(
        platform.public_app(),
        base_url="http://localhost:8787",
        follow_redirects=False,
        client=(address, 40000),
    ) as client:
        yield Web(client)


def make_platform(tmp_path: Path, clock: ManualClock, **settings: Any) -> Platform:
    return Platform.create(make_settings(tmp_path, **settings), clock=clock)


def test_the_owner_logs_in_from_a_new_address_while_the_attacker_stays_locked(
    tmp_path: Path, clock: ManualClock
) -> None:
    platform = make_platform(tmp_path, clock)
    with browser(platform, "198.51.100.10") as owner:
        assert owner.signup(OWNER).status_code == 303
    with browser(platform, "203.0.113.66") as attacker:
        for _ in range(5):
            assert attacker.login(OWNER, "wrong password!").status_code == 401
        locked = attacker.login(OWNER)  # even the right password, from this address
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
    with browser(platform, "192.0.2.44") as owner_elsewhere:
        response = owner_elsewhere.login(OWNER)
        assert response.status_code == 303, response.text
        assert owner_elsewhere.get("/dashboard").status_code == 200
    with browser(platform, "203.0.113.66") as attacker:
        assert attacker.login(OWNER, "another guess!!").status_code == 429
    platform.db.dispose()


def test_failed_log_ins_from_one_64_count_together(tmp_path: Path, clock: ManualClock) -> None:
    platform = make_platform(tmp_path, clock)
    with browser(platform, "2001:db8:5:6::1") as owner:
        owner.signup(OWNER)
    for i in range(5):
        with browser(platform, f"2001:db8:aa:bb::{i + 1}") as attacker:
            assert attacker.login(OWNER, "wrong password!").status_code == 401
    with browser(platform, "2001:db8:aa:bb:ffff::1") as same_64:
        assert same_64.login(OWNER).status_code == 429
    with browser(platform, "2001:db8:aa:bc::1") as next_64:
        assert next_64.login(OWNER).status_code == 303
    platform.db.dispose()


def test_sign_ups_are_limited_per_64_and_platform_wide(tmp_path: Path, clock: ManualClock) -> None:
    platform = make_platform(tmp_path, clock, signups_per_hour=2, signups_per_minute_total=4)
    with browser(platform, "2001:db8:1:2::1") as first:
        assert first.signup("a@example.com").status_code == 303
    with browser(platform, "2001:db8:1:2::2") as second:
        assert second.signup("b@example.com").status_code == 303
    with browser(platform, "2001:db8:1:2:abcd::3") as third:
        refused = third.signup("c@example.com")
        assert refused.status_code == 429
        assert "Too many sign-ups from this address" in refused.text
        assert int(refused.headers["retry-after"]) > 3000
    with browser(platform, "2001:db8:1:3::1") as other:
        assert other.signup("c@example.com").status_code == 303
    with browser(platform, "192.0.2.1") as another:
        assert another.signup("d@example.com").status_code == 303
    with browser(platform, "192.0.2.2") as one_too_many:
        refused = one_too_many.signup("e@example.com")
        assert refused.status_code == 429
        assert "Too many sign-ups right now" in refused.text
    clock.advance(61)
    with browser(platform, "192.0.2.2") as later:
        assert later.signup("e@example.com").status_code == 303
    platform.db.dispose()


def test_log_in_attempts_are_limited_per_address(tmp_path: Path, clock: ManualClock) -> None:
    platform = make_platform(tmp_path, clock, logins_per_minute=3, login_failures_per_address=100)
    with browser(platform, "198.51.100.1") as owner:
        owner.signup(OWNER)
    with browser(platform, "192.0.2.9") as user:
        for i in range(3):
            assert user.login(f"nobody{i}@example.com").status_code == 401
        assert user.login(OWNER).status_code == 429
        clock.advance(61)
        assert user.login(OWNER).status_code == 303
    platform.db.dispose()


def device_code(client: TestClient) -> Any:
    return client.post("/oauth/device/code", data={"client_id": "mayfly-cli"})


def test_device_codes_are_limited_per_64_and_platform_wide(
    tmp_path: Path, clock: ManualClock
) -> None:
    platform = make_platform(
        tmp_path, clock, device_codes_per_hour=2, device_codes_per_minute_total=3
    )
    app = platform.public_app()
    with (
        TestClient(app, client=("2001:db8:9:9::1", 1)) as a,
        TestClient(app, client=("2001:db8:9:9::2", 1)) as b,
    ):
        assert device_code(a).status_code == 200
        assert device_code(b).status_code == 200
        refused = device_code(a)
        assert refused.status_code == 429
        assert refused.json()["error"] == "slow_down"
        assert "from this address" in refused.json()["error_description"]
        assert int(refused.headers["retry-after"]) > 0
    with (
        TestClient(app, client=("192.0.2.1", 1)) as c,
        TestClient(app, client=("192.0.2.2", 1)) as d,
    ):
        assert device_code(c).status_code == 200
        refused = device_code(d)
        assert refused.status_code == 429
        assert "right now" in refused.json()["error_description"]
    platform.db.dispose()


def test_provisioning_limits_group_ipv6_by_64(tmp_path: Path, clock: ManualClock) -> None:
    platform = make_platform(tmp_path, clock, challenges_per_minute=2)
    app = platform.public_app()
    for i, expected in enumerate([200, 200, 429]):
        with TestClient(
            app, base_url="http://testserver/client/v4/", client=(f"2001:db8::{i}", 1)
        ) as c:
            response = c.post("provisioning/previews/challenge", content="{}")
            assert response.status_code == expected
    assert response.json()["errors"][0]["code"] == 10429
    assert int(response.headers["retry-after"]) > 0
    platform.db.dispose()


class BlockingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.release = threading.Event()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.release.wait(10)
        return super().hash(password, salt=salt)


def test_a_full_password_pool_answers_429_at_once() -> None:
    hasher = BlockingHasher()
    pool = PasswordPool(hasher, threads=1, queue=1)

    async def flood() -> tuple[list[str], list[BaseException]]:
        running = [asyncio.ensure_future(pool.hash(PASSWORD)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(RateLimited) as refused:
            await pool.hash(PASSWORD)  # one hashing, one waiting: no room for a third
        assert refused.value.retry_after > 0
        hasher.release.set()
        done = await asyncio.gather(*running, return_exceptions=True)
        hashes = [h for h in done if isinstance(h, str)]
        return hashes, [e for e in done if isinstance(e, BaseException)]

    hashes, errors = asyncio.run(flood())
    assert len(hashes) == 2 and not errors
    # The slots came back: the pool takes work again.
    assert asyncio.run(pool.verify(hashes[0], PASSWORD)) is True
    pool.close()
