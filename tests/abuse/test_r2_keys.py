"""Hostile R2 object keys and Range headers through the v4 API, on SQLite and PostgreSQL: each is
a 4xx in Cloudflare's envelope (or the right 206/416), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, make_settings, provision


@pytest.fixture
def r2(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str, dict[str, str]]]:
    platform = Platform.create(make_settings(tmp_path, database_url=database_url))
    with TestClient(
        platform.public_app(),
        base_url="http://testserver/client/v4/",
        raise_server_exceptions=False,
    ) as client:
        account: dict[str, Any] = provision(client)["account"]
        token = auth(account["apiToken"])
        base = f"accounts/{account['id']}/r2/buckets"
        assert client.post(base, headers=token, json={"name": "keys"}).status_code == 200
        yield client, f"{base}/keys/objects", token
    platform.db.dispose()


@pytest.mark.parametrize(
    "key",
    ["a%00b", "%00", "a%ED%A0%80b", "x" * 1025, "..%2F..%2Fetc%2Fpasswd", "%C0%AF"],
)
def test_hostile_keys_are_4xx_or_stored_as_plain_names(
    r2: tuple[TestClient, str, dict[str, str]], key: str
) -> None:
    client, objects, token = r2
    put = client.put(f"{objects}/{key}", headers=token, content=b"data")
    assert put.status_code < 500, put.text
    if put.status_code == 200:
        got = client.get(f"{objects}/{key}", headers=token)
        assert got.status_code == 200 and got.content == b"data"
    else:
        assert put.json()["success"] is False


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        ("bytes=0-3", 206, b"0123"),
        ("bytes=-3", 206, b"789"),
        ("bytes=-100", 206, b"0123456789"),
        ("bytes=8-", 206, b"89"),
        ("bytes=5-1000000000000000000000000", 206, b"56789"),
        ("bytes=10-", 416, None),
        ("bytes=10-20", 416, None),
        ("bytes=5-2", 416, None),
        ("bytes=-", 400, None),
        ("bytes=a-b", 400, None),
        ("bytes=0-1,3-4", 400, None),
        ("bytes=99999999999999999999999999-", 416, None),
    ],
)
def test_range_edge_cases(
    r2: tuple[TestClient, str, dict[str, str]], header: str, status: int, body: bytes | None
) -> None:
    client, objects, token = r2
    assert client.put(f"{objects}/r", headers=token, content=b"0123456789").status_code == 200
    got = client.get(f"{objects}/r", headers={**token, "range": header})
    assert got.status_code == status, got.text
    if body is not None:
        assert got.content == body
