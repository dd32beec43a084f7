"""Audit entries do not grow with an account's request rate: each account keeps at most
audit.MAX_ENTRIES_PER_ACCOUNT routine entries, the oldest trimmed first; its lifecycle entries
(`account.*`) are kept. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.core import audit
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, upload_body

CAP = 12


@pytest.fixture
def db_platform(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    platform = Platform.create(make_settings(tmp_path, database_url=database_url), clock=clock)
    yield platform
    platform.db.dispose()


@pytest.fixture
def db_client(db_platform: Platform) -> Iterator[TestClient]:
    with TestClient(db_platform.public_app(), base_url="http://testserver/client/v4/") as client:
        yield client


def events(platform: Platform, account_id: str) -> list[tuple[str, dict[str, str]]]:
    with platform.db.read() as conn:
        rows = conn.execute(
            select(tables.audit_events)
            .where(tables.audit_events.c.account_id == account_id)
            .order_by(tables.audit_events.c.id)
        ).all()
    return [(row.event, row.details) for row in rows]


def test_a_loop_of_secret_puts_keeps_the_audit_log_bounded(
    db_platform: Platform, db_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "MAX_ENTRIES_PER_ACCOUNT", CAP)
    monkeypatch.setattr(audit, "TRIM_EVERY", 1)  # every write trims: the exact count below
    platform = db_platform
    account, bystander = provision(db_client)["account"], provision(db_client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/workers/scripts/loop"
    assert db_client.put(base, headers=token, **upload_body()).status_code == 200
    other = f"accounts/{bystander['id']}/workers/scripts/quiet"
    assert (
        db_client.put(other, headers=auth(bystander["apiToken"]), **upload_body()).status_code
        == 200
    )
    bystander_before = events(platform, bystander["id"])

    for i in range(4 * CAP):
        body = {"name": f"S_{i % 3}", "text": str(i), "type": "secret_text"}
        assert db_client.put(base + "/secrets", headers=token, json=body).status_code == 200

    kept = events(platform, account["id"])
    routine = [(event, details) for event, details in kept if not event.startswith("account.")]
    assert len(routine) == CAP, routine  # 1 + 4 * CAP were written
    # The newest are kept, oldest first gone.
    assert routine[-1] == ("secret.put", {"script": "loop", "secret": f"S_{(4 * CAP - 1) % 3}"})
    assert all(event == "secret.put" for event, _ in routine)  # the upload's entry went first
    # Lifecycle entries stay; another account's entries are untouched.
    assert kept[0][0] == "account.provisioned"
    assert events(platform, bystander["id"]) == bystander_before


def test_the_trim_runs_after_some_writes_and_keeps_the_log_near_the_cap(
    db_platform: Platform, db_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trim reads the account's entries up to the cap, so it runs after one write in
    TRIM_EVERY, at random: a loop's log stays near the cap instead of paying the trim every time."""
    monkeypatch.setattr(audit, "MAX_ENTRIES_PER_ACCOUNT", CAP)
    monkeypatch.setattr(audit, "TRIM_EVERY", 4)
    trims: list[str] = []
    trim = audit.trim
    monkeypatch.setattr(
        audit, "trim", lambda conn, account_id: trims.append(account_id) or trim(conn, account_id)
    )
    account = provision(db_client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/workers/scripts/loop"
    assert db_client.put(base, headers=token, **upload_body()).status_code == 200
    for i in range(20 * CAP):
        body = {"name": f"S_{i % 3}", "text": str(i), "type": "secret_text"}
        assert db_client.put(base + "/secrets", headers=token, json=body).status_code == 200
    routine = [e for e, _ in events(db_platform, account["id"]) if not e.startswith("account.")]
    assert 0 < len(trims) < 20 * CAP  # some writes trimmed, not every one
    assert CAP <= len(routine) <= CAP + 40  # (3/4)**40: about 1e-5 that a run sees more
