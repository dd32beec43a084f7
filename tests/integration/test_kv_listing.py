"""KV prefix listing is a byte range (case-sensitive, `%`/`_` literal) and namespace summaries
count only their own account's keys — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.resources.kv import prefix_successor
from mayfly.services.workers.inventory import namespaces_of
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision


@pytest.fixture
def db_client(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    platform = Platform.create(make_settings(tmp_path, database_url=database_url), clock=clock)
    with TestClient(platform.public_app(), base_url="http://t/client/v4/") as c:
        c.app_state = platform  # type: ignore[attr-defined]
        yield c
    platform.db.dispose()


def namespace(client: TestClient, account: dict[str, Any], title: str = "ns") -> str:
    response = client.post(
        f"accounts/{account['id']}/storage/kv/namespaces",
        json={"title": title},
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 200, response.text
    namespace_id: str = response.json()["result"]["id"]
    return namespace_id


def put(client: TestClient, account: dict[str, Any], ns: str, key: str) -> None:
    response = client.put(
        f"accounts/{account['id']}/storage/kv/namespaces/{ns}/values/{key}",
        content=b"v",
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 200, response.text


def names(client: TestClient, account: dict[str, Any], ns: str, prefix: str) -> list[str]:
    response = client.get(
        f"accounts/{account['id']}/storage/kv/namespaces/{ns}/keys",
        params={"prefix": prefix},
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["result"]]


KEYS = ["USER/3", "user/1", "user/2", "user0", "user", "userx", "us_r/1", "us%r/1", "usér/1"]


def test_prefix_listing_is_case_sensitive_and_literal(db_client: TestClient) -> None:
    account = provision(db_client)["account"]
    ns = namespace(db_client, account)
    for key in KEYS:
        put(db_client, account, ns, key)
    assert names(db_client, account, ns, "user/") == ["user/1", "user/2"]
    assert names(db_client, account, ns, "USER/") == ["USER/3"]
    assert names(db_client, account, ns, "us_") == ["us_r/1"]
    assert names(db_client, account, ns, "us%") == ["us%r/1"]
    assert names(db_client, account, ns, "usé") == ["usér/1"]
    assert names(db_client, account, ns, "user") == ["user", "user/1", "user/2", "user0", "userx"]
    # Byte order (UTF-8), as Cloudflare lists keys.
    assert names(db_client, account, ns, "") == sorted(KEYS, key=lambda k: k.encode())


def test_namespace_summaries_count_only_the_accounts_keys(db_client: TestClient) -> None:
    platform: Platform = db_client.app_state  # type: ignore[attr-defined]
    mine, theirs = provision(db_client)["account"], provision(db_client)["account"]
    ns = namespace(db_client, mine)
    put(db_client, mine, ns, "a")
    other = namespace(db_client, theirs)
    put(db_client, theirs, other, "b")
    with platform.db.read() as conn:
        assert [(n.title, n.keys) for n in namespaces_of(conn, mine["id"])] == [("ns", 1)]


@pytest.mark.parametrize(
    ("prefix", "successor"),
    [
        ("user/", "user0"),
        ("a", "b"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),
        ("é", "ê"),
    ],
)
def test_prefix_successor(prefix: str, successor: str | None) -> None:
    assert prefix_successor(prefix) == successor
