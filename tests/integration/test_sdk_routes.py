"""Routes the official SDKs and wrangler hit (issue 11): script list and download, settings PATCH
(JSON, a `settings` part, the npm SDK's bracketed fields), schedules, account settings, secrets in
bulk (deployed) and on the newest version (not deployed), KV bulk get, paginated deployments."""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import HELLO, auth, provision, upload_body


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    made: dict[str, Any] = provision(client)["account"]
    token = auth(made["apiToken"])
    deployed = client.put(
        f"accounts/{made['id']}/workers/scripts/hello", headers=token, **upload_body()
    )
    assert deployed.status_code == 200, deployed.text
    return made


def get(client: TestClient, account: dict[str, Any], path: str) -> Any:
    response = client.get(f"accounts/{account['id']}/{path}", headers=auth(account["apiToken"]))
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_list_and_download(client: TestClient, account: dict[str, Any]) -> None:
    listed = get(client, account, "workers/scripts")
    assert [s["id"] for s in listed] == ["hello"]
    assert listed[0]["handlers"] == ["fetch"] and listed[0]["etag"]
    for path in ("workers/scripts/hello", "workers/scripts/hello/content/v2"):
        response = client.get(f"accounts/{account['id']}/{path}", headers=auth(account["apiToken"]))
        assert response.status_code == 200
        assert response.headers["cf-entrypoint"] == "index.js"
        head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            head + response.content
        )
        parts = list(message.iter_parts())
        assert [p.get_param("name", header="content-disposition") for p in parts] == ["index.js"]
        assert parts[0].get_content_type() == "application/javascript+module"
        assert parts[0].get_payload(decode=True) == HELLO
    missing = client.get(
        f"accounts/{account['id']}/workers/scripts/nope/content/v2",
        headers=auth(account["apiToken"]),
    )
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == 10007


def test_patch_settings_in_every_form(client: TestClient, account: dict[str, Any]) -> None:
    path = f"accounts/{account['id']}/workers/scripts/hello/settings"
    token = auth(account["apiToken"])
    as_json = client.patch(path, headers=token, json={"logpush": True})
    assert as_json.json()["result"]["logpush"] is True
    part = client.patch(
        path, headers=token, files={"settings": (None, '{"tags": ["a"]}', "application/json")}
    )
    assert part.json()["result"]["tags"] == ["a"]
    bracketed = client.patch(
        path,
        headers=token,
        files=[
            ("settings[logpush]", (None, "false")),
            ("settings[tags][]", (None, "x")),
            ("settings[tags][]", (None, "y")),
            ("settings[observability][enabled]", (None, "true")),
        ],
    )
    result = bracketed.json()["result"]
    assert (result["logpush"], result["tags"]) == (False, ["x", "y"])
    assert result["observability"]["enabled"] is True
    broken = client.patch(
        path,
        headers={**token, "content-type": "multipart/form-data; boundary=x"},
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nnoname\r\n",
    )
    assert broken.status_code == 400 and broken.json()["errors"][0]["code"] == 10021
    # what a client read back and sends unchanged is no change; a new compatibility date is
    unchanged = client.patch(
        path, headers=token, json=get(client, account, "workers/scripts/hello/settings")
    )
    assert unchanged.status_code == 200, unchanged.text
    refused = client.patch(path, headers=token, json={"compatibility_date": "2024-01-01"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == 10021


def test_schedules_and_account_settings(client: TestClient, account: dict[str, Any]) -> None:
    assert get(client, account, "workers/scripts/hello/schedules") == {"schedules": []}
    fixed = {"default_usage_model": "standard", "green_compute": False}
    assert get(client, account, "workers/account-settings") == fixed
    path, token = f"accounts/{account['id']}/workers/account-settings", auth(account["apiToken"])
    assert client.put(path, headers=token, json={"green_compute": False}).json()["result"] == fixed
    refused = client.patch(path, headers=token, json={"default_usage_model": "unbound"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == 10021


def test_secrets_bulk_deploys_and_versions_latest_does_not(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    token = auth(account["apiToken"])
    bulk = client.patch(
        f"accounts/{account['id']}/workers/scripts/hello/secrets-bulk",
        headers=token,
        json={
            "secrets": {"A": {"name": "A", "text": "a", "type": "secret_text"}, "B": {"text": "b"}}
        },
    )
    assert bulk.json()["result"] == {
        "A": {"name": "A", "type": "secret_text"},
        "B": {"name": "B", "type": "secret_text"},
    }
    route = platform.services.routing.route(f"hello.{account['name']}.localhost")
    latest = client.patch(
        f"accounts/{account['id']}/workers/workers/hello/versions/latest",
        headers=token,
        json={
            "env": {"A": None, "C": {"type": "secret_text", "text": "c"}},
            "annotations": {"workers/message": "m"},
        },
    )
    assert latest.status_code == 200, latest.text
    version = latest.json()["result"]
    assert {b["name"] for b in version["resources"]["bindings"]} == {"B", "C"}
    assert version["annotations"]["workers/message"] == "m"
    again = platform.services.routing.route(f"hello.{account['name']}.localhost")
    assert again.version_id == route.version_id, "a new version, not deployed"
    names = [s["name"] for s in get(client, account, "workers/scripts/hello/secrets")]
    assert sorted(names) == ["A", "B"]
    bad = client.patch(
        f"accounts/{account['id']}/workers/scripts/hello/secrets-bulk",
        headers=token,
        json={"secrets": {"1x": {"text": "a"}}},
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == 10021


def test_deployments_paginate(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    client.put(f"accounts/{account['id']}/workers/scripts/hello", headers=token, **upload_body())
    path = f"accounts/{account['id']}/workers/scripts/hello/deployments"
    first = client.get(path + "?per_page=1", headers=token).json()
    assert first["result"]["items"] == first["result"]["deployments"]
    assert len(first["result"]["items"]) == 1 and first["result_info"]["total_count"] == 2
    second = client.get(path + "?per_page=1&page=2", headers=token).json()["result"]["items"]
    beyond = client.get(path + "?per_page=1&page=3", headers=token).json()["result"]["items"]
    assert second[0]["id"] != first["result"]["items"][0]["id"] and beyond == []
    one = client.get(f"{path}/{second[0]['id']}", headers=token)
    assert one.json()["result"] == second[0]
    unknown = client.get(f"{path}/00000000-0000-0000-0000-000000000000", headers=token)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == 10404


def test_delete_subdomain_disables(client: TestClient, account: dict[str, Any]) -> None:
    path = f"accounts/{account['id']}/workers/scripts/hello/subdomain"
    token = auth(account["apiToken"])
    assert client.delete(path, headers=token).json()["result"]["enabled"] is False
    assert client.get(path, headers=token).json()["result"]["enabled"] is False


def test_kv_bulk_get(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    ns = client.post(
        f"accounts/{account['id']}/storage/kv/namespaces", headers=token, json={"title": "t"}
    ).json()["result"]["id"]
    base = f"accounts/{account['id']}/storage/kv/namespaces/{ns}"
    client.put(
        base + "/bulk",
        headers=token,
        json=[{"key": "j", "value": '{"n": 1}', "metadata": {"m": 1}}, {"key": "t", "value": "x"}],
    )
    text = client.post(base + "/bulk/get", headers=token, json={"keys": ["j", "t", "no"]})
    assert text.json()["result"] == {"values": {"j": '{"n": 1}', "t": "x", "no": None}}
    as_json = client.post(
        base + "/bulk/get",
        headers=token,
        json={"keys": ["j"], "type": "json", "withMetadata": True},
    )
    assert as_json.json()["result"]["values"]["j"] == {
        "value": {"n": 1},
        "metadata": {"m": 1},
        "expiration": None,
    }
    not_json = client.post(base + "/bulk/get", headers=token, json={"keys": ["t"], "type": "json"})
    assert not_json.status_code == 400
    too_many = client.post(
        base + "/bulk/get", headers=token, json={"keys": [str(i) for i in range(101)]}
    )
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["code"] == 10021


def test_an_invalid_subdomain_is_400_not_taken(client: TestClient, account: dict[str, Any]) -> None:
    """An invalid name is a 400 naming the rule, not 409 'taken or reserved'; a valid one that is
    not the account's is taken (10031), the account's own is owned."""
    base = f"accounts/{account['id']}/workers/subdomains"
    token = auth(account["apiToken"])
    for name in ("%00", "UPPER", "-dash", "dash-", "a" * 64, "a.b", "a_b", "%20"):
        response = client.get(f"{base}/{name}", headers=token)
        assert response.status_code == 400, (name, response.text)
        error = response.json()["errors"][0]
        assert error["code"] == 10021 and "DNS label" in error["message"], error
    taken = client.get(f"{base}/some-other-name", headers=token)
    assert taken.status_code == 409 and taken.json()["errors"][0]["code"] == 10031
    owned = client.get(f"{base}/{account['name']}", headers=token)
    assert owned.json()["result"] == {"available": False, "owned": True}
    put = client.put(
        f"accounts/{account['id']}/workers/subdomain", headers=token, json={"subdomain": "a\x00"}
    )
    assert put.status_code == 400 and "DNS label" in put.json()["errors"][0]["message"]
