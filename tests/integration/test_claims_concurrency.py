"""Exactly one of 20 concurrent claims wins — on a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from mayfly.app import Platform
from mayfly.storage import tables
from tests.conftest import make_settings, provision
from tests.integration.test_claim_support import (
    CSRF_RE,
    PASSWORD,
    cheap_password_hashing,
    claim_path,
    deploy,
)

CLAIMERS = 20


@pytest.fixture
def server(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Platform, str]]:
    """The public app on a free loopback port, served by uvicorn in a thread."""
    cheap_password_hashing(monkeypatch)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    platform = Platform.create(
        make_settings(tmp_path, database_url=database_url, public_url=base, api_port=port)
    )
    config = uvicorn.Config(
        platform.public_app(), log_level="warning", lifespan="off", ws="none", access_log=False
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(uv.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not uv.started:
        thread.join(0.01)
    try:
        yield platform, base
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()
        platform.db.dispose()


def _csrf(client: httpx.Client, path: str) -> str:
    found = CSRF_RE.search(client.get(path).text)
    assert found
    return found.group(1)


def test_exactly_one_of_twenty_concurrent_claims_wins(server: tuple[Platform, str]) -> None:
    platform, base = server
    with httpx.Client(base_url=base + "/client/v4/") as api:
        created = provision(api)
        account = created["account"]
        deploy(api, account["id"], account["apiToken"])
    path = claim_path(created)

    # Twenty people, each logged in in their own browser; the odd ones own an account to move into.
    people: list[tuple[httpx.Client, dict[str, str]]] = []
    for i in range(CLAIMERS):
        browser = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
        signed = browser.post(
            "/signup",
            data={
                "csrf_token": _csrf(browser, "/signup"),
                "email": f"person{i}@example.com",
                "password": PASSWORD,
            },
        )
        assert signed.status_code == 303, signed.text
        form = {"csrf_token": _csrf(browser, path), "action": "keep"}
        if i % 2:
            made = browser.post(
                "/dashboard/accounts",
                data={"csrf_token": _csrf(browser, "/dashboard"), "name": f"team-{i}"},
            )
            form = {**form, "action": "move", "into": made.headers["location"].rsplit("/", 1)[1]}
        people.append((browser, form))

    barrier = threading.Barrier(CLAIMERS)
    statuses: list[int] = [0] * CLAIMERS

    def claim(i: int) -> None:
        browser, form = people[i]
        barrier.wait()
        statuses[i] = browser.post(path, data=form).status_code

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for browser, _ in people:
        browser.close()

    assert sorted(statuses) == [303] + [409] * (CLAIMERS - 1), statuses
    winner = statuses.index(303)
    with platform.db.read() as conn:
        row = conn.execute(
            select(tables.accounts).where(tables.accounts.c.id == account["id"])
        ).one()
        claims = conn.execute(
            select(func.count())
            .select_from(tables.audit_events)
            .where(tables.audit_events.c.event == "account.claimed")
        ).scalar_one()
        owner = conn.execute(
            select(tables.users.c.email).where(tables.users.c.id == row.owner_user_id)
        ).scalar_one()
        moved = conn.execute(select(func.count()).select_from(tables.moved_hosts)).scalar_one()
    assert claims == 1 and row.claimed_at is not None and row.expires_at is None
    assert owner == f"person{winner}@example.com"
    assert moved == (1 if winner % 2 else 0)
    host = f"hello.{account['name']}.localhost"
    assert platform.services.routing.route(host).status == ("moved" if winner % 2 else "ok")
