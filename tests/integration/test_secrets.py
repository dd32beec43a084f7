"""Secrets: encrypted at rest, each change a new version and deployment (spec §5.9)."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, provision, upload_body


def test_secret_put_list_delete(client: TestClient, platform: Platform) -> None:
    account = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/workers/scripts/sec"
    missing = client.put(
        base + "/secrets", headers=token, json={"name": "S", "text": "x", "type": "secret_text"}
    )
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == 10007
    client.put(base, headers=token, **upload_body())
    put = client.put(
        base + "/secrets",
        headers={**token, "content-type": "text/plain;charset=UTF-8"},
        content='{"name":"MY_SECRET","text":"s3cr3t-value","type":"secret_text"}',
    )
    assert put.status_code == 200, put.text
    assert client.get(base + "/secrets", headers=token).json()["result"] == [
        {"name": "MY_SECRET", "type": "secret_text"}
    ]
    deployments = client.get(base + "/deployments", headers=token).json()["result"]["deployments"]
    assert len(deployments) == 2
    assert deployments[0]["annotations"]["workers/triggered_by"] == "secret"
    route = platform.services.routing.route(f"sec.{account['name']}.localhost")
    assert (
        platform.services.routing.version_code(route.version_id or "")["env"]["MY_SECRET"]
        == "s3cr3t-value"
    )
    # Encrypted at rest: the value is nowhere in the database files.
    blob = b"".join(p.read_bytes() for p in platform.settings.data_dir.glob("mayfly.db*"))
    assert b"s3cr3t-value" not in blob
    # Survives a redeploy that keeps secrets (wrangler's keep_bindings).
    client.put(base, headers=token, **upload_body(keep_bindings=["secret_text", "secret_key"]))
    route = platform.services.routing.route(f"sec.{account['name']}.localhost")
    assert (
        platform.services.routing.version_code(route.version_id or "")["env"]["MY_SECRET"]
        == "s3cr3t-value"
    )
    deleted = client.delete(base + "/secrets/MY_SECRET?url_encoded=true", headers=token)
    assert deleted.status_code == 200
    assert client.get(base + "/secrets", headers=token).json()["result"] == []
    again = client.delete(base + "/secrets/MY_SECRET?url_encoded=true", headers=token)
    assert again.status_code == 404


def test_bad_secrets_are_refused(client: TestClient) -> None:
    account: dict[str, Any] = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/workers/scripts/sec"
    client.put(base, headers=token, **upload_body())
    for body in (
        {"name": "1bad", "text": "x"},
        {"name": "OK"},
        {"name": "OK", "text": "x", "type": "secret_key"},
    ):
        response = client.put(base + "/secrets", headers=token, json=body)
        assert response.status_code == 400, body
