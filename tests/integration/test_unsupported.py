"""Features Mayfly does not serve answer 10021 naming them (mayfly/surface.py), before anything is
stored: an upload that binds one leaves the deployed version serving, and wrangler's lookups of
queues and zones stop on the same 10021 instead of "No route" (7003)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly import surface
from mayfly.app import Platform
from tests.conftest import auth, provision, upload_body


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def refusal(response: Any) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == 10021
    message: str = error["message"]
    return message


@pytest.mark.parametrize(
    ("binding", "feature"),
    [
        # Served, but only for what the account has: refused the same way, nothing changes.
        ({"type": "r2_bucket", "bucket_name": "b"}, "does not exist in this account"),
        ({"type": "queue", "queue_name": "q"}, "Queues"),
        ({"type": "durable_object_namespace", "class_name": "C"}, "Durable Objects"),
        ({"type": "service", "service": "other"}, "not a Worker of this account"),
    ],
)
def test_an_upload_with_a_refused_binding_changes_nothing(
    client: TestClient,
    account: dict[str, Any],
    platform: Platform,
    binding: dict[str, str],
    feature: str,
) -> None:
    token = auth(account["apiToken"])
    url = f"accounts/{account['id']}/workers/scripts/hello"
    first = client.put(url, headers=token, **upload_body())
    assert first.status_code == 200, first.text
    host = f"hello.{account['name']}.localhost"
    before = platform.services.routing.route(host).version_id
    refused = client.put(url, headers=token, **upload_body(bindings=[{"name": "X", **binding}]))
    assert feature in refusal(refused)
    assert platform.services.routing.route(host).version_id == before
    versions = client.get(url + "/versions", headers=token).json()["result"]
    assert len(versions["items"]) == 1


@pytest.mark.parametrize(
    ("path", "feature"),
    [
        ("queues?name=q", "Queues"),
        ("queues/abc", "Queues"),
        ("workflows", "Workflows"),
    ],
)
def test_product_lookups_are_refused_by_name(
    client: TestClient, account: dict[str, Any], path: str, feature: str
) -> None:
    response = client.get(f"accounts/{account['id']}/{path}", headers=auth(account["apiToken"]))
    assert feature in refusal(response)


def test_routes_are_refused_and_none_is_fine(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    url = f"accounts/{account['id']}/workers/scripts/hello/routes"
    listed = client.get(url, headers=token)
    assert listed.json()["result"] == []
    assert client.put(url, headers=token, json=[]).json()["result"] == []
    message = refusal(client.put(url, headers=token, json=[{"pattern": "example.com/*"}]))
    assert surface.BASE_URL_NOTE in message
    zones = client.get("zones?name=example.com", headers=token)
    assert surface.BASE_URL_NOTE in refusal(zones)


def test_product_lookups_need_a_token(client: TestClient, account: dict[str, Any]) -> None:
    response = client.get(f"accounts/{account['id']}/queues")
    assert response.status_code in (401, 403), response.text


def test_refused_routes_leave_the_deploy_as_it_is(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    """wrangler uploads, then sets routes: the refusal changes nothing and says the Worker is
    deployed, at which URL."""
    token = auth(account["apiToken"])
    url = f"accounts/{account['id']}/workers/scripts/hello"
    host = f"hello.{account['name']}.localhost"
    assert client.put(url, headers=token, **upload_body()).status_code == 200
    first = platform.services.routing.route(host).version_id
    second = client.put(url, headers=token, **upload_body())
    assert second.status_code == 200
    latest = platform.services.routing.route(host).version_id
    assert latest != first
    message = refusal(client.put(url + "/routes", headers=token, json=[{"pattern": "x.com/*"}]))
    assert platform.services.routing.route(host).version_id == latest
    assert surface.BASE_URL_NOTE in message
    assert "The Worker itself is deployed" in message
    assert platform.settings.worker_url("hello", account["name"]) in message


def test_routes_set_right_after_creating_a_worker_keep_the_worker(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    """An SDK client that creates a Worker and then sets routes keeps its Worker."""
    token = auth(account["apiToken"])
    url = f"accounts/{account['id']}/workers/scripts/fresh"
    assert client.put(url, headers=token, **upload_body()).status_code == 200
    refusal(client.put(url + "/routes", headers=token, json=["example.com/*"]))
    kept = client.get(f"accounts/{account['id']}/workers/services/fresh", headers=token)
    assert kept.status_code == 200, kept.text
    host = f"fresh.{account['name']}.localhost"
    assert platform.services.routing.route(host).version_id is not None


def test_routes_of_an_unknown_worker_are_refused_without_a_url(
    client: TestClient, account: dict[str, Any]
) -> None:
    url = f"accounts/{account['id']}/workers/scripts/nothing-here/routes"
    message = refusal(client.put(url, headers=auth(account["apiToken"]), json=["example.com/*"]))
    assert "deployed" not in message
