"""Workers KV through the v4 API (spec §5.8): namespaces, values, metadata, TTL, encoded keys."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.clock import ManualClock
from tests.conftest import auth, provision


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def ns_path(account: dict[str, Any]) -> str:
    return f"accounts/{account['id']}/storage/kv/namespaces"


def create(client: TestClient, account: dict[str, Any], title: str) -> str:
    response = client.post(
        ns_path(account), headers=auth(account["apiToken"]), json={"title": title}
    )
    assert response.status_code == 200, response.text
    namespace_id: str = response.json()["result"]["id"]
    return namespace_id


def test_namespaces_create_list_and_duplicate(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    b = create(client, account, "b-space")
    a = create(client, account, "a-space")
    duplicate = client.post(ns_path(account), headers=token, json={"title": "a-space"})
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"][0]["code"] == 10014
    # The SDK pages until an empty page; wrangler reads total_count.
    first = client.get(
        ns_path(account) + "?per_page=1000&order=title&direction=asc", headers=token
    ).json()
    assert [n["id"] for n in first["result"]] == [a, b]
    assert first["result_info"]["total_count"] == 2
    assert (
        client.get(ns_path(account) + "?per_page=1000&page=2", headers=token).json()["result"] == []
    )
    renamed = client.put(f"{ns_path(account)}/{a}", headers=token, json={"title": "renamed"})
    assert renamed.json()["result"]["title"] == "renamed"
    assert client.delete(f"{ns_path(account)}/{b}", headers=token).status_code == 200
    assert len(client.get(ns_path(account), headers=token).json()["result"]) == 1


def test_values_roundtrip_with_encoded_keys(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    ns = create(client, account, "data")
    key = "dir/a b?c#d%e"
    path = f"{ns_path(account)}/{ns}/values/{quote(key, safe='')}"
    put = client.put(
        path, headers={**token, "content-type": "text/plain;charset=UTF-8"}, content=b"v1"
    )
    assert put.status_code == 200, put.text
    got = client.get(path, headers=token)
    assert got.status_code == 200
    assert got.content == b"v1"
    keys = client.get(f"{ns_path(account)}/{ns}/keys?prefix=", headers=token).json()
    assert keys["result"] == [{"name": key}]
    assert keys["result_info"]["cursor"] == ""
    assert client.delete(path, headers=token).status_code == 200
    missing = client.get(path, headers=token)
    assert missing.status_code == 404


def test_multipart_put_with_metadata_and_ttl(
    client: TestClient, account: dict[str, Any], clock: ManualClock, platform: Platform
) -> None:
    token = auth(account["apiToken"])
    ns = create(client, account, "meta")
    response = client.put(
        f"{ns_path(account)}/{ns}/values/k2?expiration_ttl=120",
        headers=token,
        files=[("value", (None, "v2")), ("metadata", (None, '{"a":1}'))],
    )
    assert response.status_code == 200, response.text
    keys = client.get(f"{ns_path(account)}/{ns}/keys", headers=token).json()["result"]
    assert keys[0]["name"] == "k2"
    assert keys[0]["metadata"] == {"a": 1}
    assert keys[0]["expiration"] > clock.now().timestamp()
    meta = client.get(f"{ns_path(account)}/{ns}/metadata/k2", headers=token).json()["result"]
    assert meta == {"a": 1}
    clock.advance(121)
    assert client.get(f"{ns_path(account)}/{ns}/values/k2", headers=token).status_code == 404
    assert client.get(f"{ns_path(account)}/{ns}/keys", headers=token).json()["result"] == []


def test_listing_pages_with_a_cursor(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    ns = create(client, account, "many")
    for i in range(25):
        client.put(f"{ns_path(account)}/{ns}/values/p{i:02d}", headers=token, content=b"x")
    client.put(f"{ns_path(account)}/{ns}/values/other", headers=token, content=b"x")
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.get(
            f"{ns_path(account)}/{ns}/keys?prefix=p&limit=10&cursor={cursor}", headers=token
        ).json()
        seen += [k["name"] for k in page["result"]]
        cursor = page["result_info"]["cursor"]
        if not cursor:
            break
    assert seen == [f"p{i:02d}" for i in range(25)]


def test_bad_inputs(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    ns = create(client, account, "bad")
    short_ttl = client.put(
        f"{ns_path(account)}/{ns}/values/k?expiration_ttl=5", headers=token, content=b"x"
    )
    assert short_ttl.status_code == 400
    long_key = client.put(
        f"{ns_path(account)}/{ns}/values/{'k' * 600}", headers=token, content=b"x"
    )
    assert long_key.status_code == 400
    assert client.post(ns_path(account), headers=token, json={"title": ""}).status_code == 400
    unknown = client.get(f"{ns_path(account)}/nope/values/k", headers=token)
    assert unknown.status_code == 404


def test_namespaces_are_scoped_to_their_account(
    client: TestClient, account: dict[str, Any]
) -> None:
    ns = create(client, account, "mine")
    client.put(
        f"{ns_path(account)}/{ns}/values/k", headers=auth(account["apiToken"]), content=b"secret"
    )
    other = provision(client)["account"]
    # Through the other account's own path: the namespace does not exist there.
    response = client.get(f"{ns_path(other)}/{ns}/values/k", headers=auth(other["apiToken"]))
    assert response.status_code == 404
    # Through this account's path with the other token: 9109.
    response = client.get(f"{ns_path(account)}/{ns}/values/k", headers=auth(other["apiToken"]))
    assert response.status_code == 403


def test_kv_binding_reaches_the_version(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    from tests.conftest import upload_body

    ns = create(client, account, "bound")
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/kvw",
        headers=auth(account["apiToken"]),
        **upload_body(bindings=[{"name": "CACHE", "type": "kv_namespace", "namespace_id": ns}]),
    )
    assert response.status_code == 200, response.text
    code = platform.services.routing.version_code(response.json()["result"]["deployment_id"])
    assert code["kv_namespaces"] == [{"name": "CACHE", "namespace_id": ns}]
