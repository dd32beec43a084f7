"""Two API replicas on one PostgreSQL count per-address limits together (issue 13, item 1): a
client gets a limit once across the cluster, not once per replica. SQLite keeps them in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.operations.housekeeping import Housekeeper
from tests.clock import ManualClock
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[list[Platform]]:
    clock = ManualClock()
    made = [
        Platform.create(
            make_settings(tmp_path / name, database_url=postgres_url, challenges_per_minute=3),
            clock=clock,
        )
        for name in ("a", "b")
    ]
    yield made
    for platform in made:
        platform.db.dispose()


def challenge(platform: Platform) -> int:
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        return client.post("provisioning/previews/challenge", content="{}").status_code


def test_challenges_per_address_are_counted_across_replicas(replicas: list[Platform]) -> None:
    a, b = replicas
    assert [challenge(a), challenge(b), challenge(a)] == [200, 200, 200]
    assert challenge(b) == 429
    assert challenge(a) == 429


def test_failed_log_ins_recorded_by_one_replica_lock_out_on_the_other(
    replicas: list[Platform],
) -> None:
    a, b = replicas
    now = a.services.ctx.clock.now().timestamp()
    limit = a.settings.login_failures_per_email
    for _ in range(limit):
        a.services.users.by_pair.record("someone@example.com|127.0.0.1", now)
    assert b.services.users.by_pair.retry_after("someone@example.com|127.0.0.1", now) > 0
    b.services.users.by_pair.reset("someone@example.com|127.0.0.1")
    assert a.services.users.by_pair.retry_after("someone@example.com|127.0.0.1", now) == 0


def test_the_housekeeper_prunes_shared_hits(replicas: list[Platform]) -> None:
    a, b = replicas
    challenge(a)
    limiter = b.services.provisioning.challenge_limiter
    assert len(limiter) == 1
    later = a.services.ctx.clock.now().timestamp() + 61
    assert Housekeeper(b.services).named_limiters["challenges"].prune(later) == 1
    assert len(limiter) == 0
