"""HEAD is a read: on every route that serves GET it answers what GET answers, without the body,
and changes nothing. Starlette adds HEAD to every GET route and hands the handler the request as
it came; handlers serving GET, PUT and DELETE took "neither GET nor PUT" for DELETE, so a HEAD
deleted a KV namespace, a KV value, an R2 bucket or object, a D1 database or a secret, and turned
a Worker's workers.dev subdomain on."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import auth, provision, upload_body


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_head_changes_nothing_and_answers_gets_headers(
    client: TestClient, account: dict[str, Any]
) -> None:
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}"
    namespace = ok(client.post(f"{base}/storage/kv/namespaces", headers=token, json={"title": "n"}))
    kv = f"{base}/storage/kv/namespaces/{namespace['id']}"
    assert client.put(f"{kv}/values/k", headers=token, content=b"value").status_code == 200
    ok(client.post(f"{base}/r2/buckets", headers=token, json={"name": "photos"}))
    r2 = f"{base}/r2/buckets/photos"
    assert client.put(f"{r2}/objects/a.txt", headers=token, content=b"data").status_code == 200
    database = ok(client.post(f"{base}/d1/database", headers=token, json={"name": "db"}))
    d1 = f"{base}/d1/database/{database['uuid']}"
    script = f"{base}/workers/scripts/w"
    assert client.put(script, headers=token, **upload_body()).status_code == 200
    secret = {"name": "S", "text": "x", "type": "secret_text"}
    assert client.put(f"{script}/secrets", headers=token, json=secret).status_code == 200
    subdomain_before = ok(client.get(f"{script}/subdomain", headers=token))

    for path in (kv, f"{kv}/values/k", r2, f"{r2}/objects/a.txt", d1, f"{script}/secrets/S"):
        got = client.get(path, headers=token)
        head = client.head(path, headers=token)
        assert head.status_code == got.status_code == 200, (path, head.status_code, got.text)
        assert head.content == b""
        assert head.headers.get("content-length") == got.headers.get("content-length"), path
    assert client.head(f"{script}/subdomain", headers=token).status_code == 200

    assert client.get(f"{kv}/values/k", headers=token).content == b"value"
    assert ok(client.get(kv, headers=token))["id"] == namespace["id"]
    assert client.get(f"{r2}/objects/a.txt", headers=token).content == b"data"
    assert ok(client.get(r2, headers=token))["name"] == "photos"
    assert ok(client.get(d1, headers=token))["uuid"] == database["uuid"]
    assert ok(client.get(f"{script}/secrets/S", headers=token))["name"] == "S"
    assert ok(client.get(f"{script}/subdomain", headers=token)) == subdomain_before
