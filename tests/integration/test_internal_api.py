"""The internal API: secret-guarded; routes, code and KV for the data plane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.clock import ManualClock
from tests.conftest import auth, provision, upload_body


@pytest.fixture
def internal(platform: Platform) -> Iterator[TestClient]:
    with TestClient(
        platform.internal_app(),
        base_url="http://internal/internal/v1/",
        headers={"x-mayfly-internal-secret": platform.internal_secret},
    ) as c:
        yield c


def test_the_secret_is_required(platform: Platform) -> None:
    with TestClient(platform.internal_app(), base_url="http://internal/internal/v1/") as c:
        assert c.get("route?host=x").status_code == 403
        assert (
            c.get("route?host=x", headers={"x-mayfly-internal-secret": "wrong"}).status_code == 403
        )


def test_internal_api_is_not_on_the_public_app(client: TestClient) -> None:
    assert client.get("http://testserver/internal/v1/health").status_code == 404


def test_routes_and_code(client: TestClient, internal: TestClient, clock: ManualClock) -> None:
    account = provision(client)["account"]
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/hello",
        headers=auth(account["apiToken"]),
        **upload_body(bindings=[{"name": "GREETING", "type": "json", "json": {"a": 1}}]),
    )
    version_id = response.json()["result"]["deployment_id"]
    host = f"hello.{account['name']}.localhost:8788"
    route = internal.get("route", params={"host": host}).json()
    assert route["status"] == "ok"
    assert route["version_id"] == version_id
    assert route["expires_at_ms"] > clock.now().timestamp() * 1000
    code = internal.get(f"versions/{version_id}").json()
    assert code["main_module"] == "index.js"
    assert code["env"] == {"GREETING": {"a": 1}}
    assert (
        internal.get("route", params={"host": "nope.nothing.localhost"}).json()["status"]
        == "unknown"
    )
    assert internal.get("route", params={"host": "example.com"}).json()["status"] == "unknown"
    assert internal.get("versions/nope").status_code == 404
    clock.advance(3601)
    assert internal.get("route", params={"host": host}).json()["status"] == "expired"


def test_a_route_answer_carries_the_code_the_asker_lacks(
    client: TestClient, internal: TestClient
) -> None:
    account = provision(client)["account"]
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/hello",
        headers=auth(account["apiToken"]),
        **upload_body(),
    )
    version_id = response.json()["result"]["deployment_id"]
    host = f"hello.{account['name']}.localhost"
    answer = internal.get("route", params={"host": host, "code": "1"}).json()
    assert answer["status"] == "ok" and answer["version_id"] == version_id
    assert answer["version"] == internal.get(f"versions/{version_id}").json()
    held = internal.get("route", params={"host": host, "code": "1", "have": version_id}).json()
    assert held["version_id"] == version_id and "version" not in held
    assert "version" not in internal.get("route", params={"host": host}).json()
    unknown = internal.get("route", params={"host": "nope.nothing.localhost", "code": "1"}).json()
    assert unknown["status"] == "unknown" and "version" not in unknown


def test_kv_through_the_internal_api(client: TestClient, internal: TestClient) -> None:
    account = provision(client)["account"]
    ns = client.post(
        f"accounts/{account['id']}/storage/kv/namespaces",
        headers=auth(account["apiToken"]),
        json={"title": "t"},
    ).json()["result"]["id"]
    put = internal.put(
        f"kv/{ns}",
        params={"key": "a/b", "expiration_ttl": "120"},
        content=b"hello",
        headers={"x-mayfly-kv-metadata": '{"m":1}'},
    )
    assert put.status_code == 200
    got = internal.get(f"kv/{ns}", params={"key": "a/b"})
    assert got.content == b"hello"
    assert got.headers["x-mayfly-kv-metadata"] == '{"m": 1}'
    assert int(got.headers["x-mayfly-kv-expiration"]) > 0
    listed = internal.get(f"kv/{ns}/keys", params={"prefix": "a"}).json()
    assert listed["keys"][0]["name"] == "a/b" and listed["list_complete"] is True
    # And the API sees what the Worker wrote.
    api = client.get(
        f"accounts/{account['id']}/storage/kv/namespaces/{ns}/values/a%2Fb",
        headers=auth(account["apiToken"]),
    )
    assert api.content == b"hello"
    assert internal.delete(f"kv/{ns}", params={"key": "a/b"}).status_code == 200
    assert internal.get(f"kv/{ns}", params={"key": "a/b"}).status_code == 404
    assert internal.put("kv/nope", params={"key": "k"}, content=b"x").status_code == 404
