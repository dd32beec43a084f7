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


def _state(client: TestClient, base: str, token: dict[str, str]) -> tuple[Any, ...]:
    """What a refused change must leave as it was: secrets, deployments, versions."""
    return tuple(
        client.get(base + path, headers=token).json()["result"]
        for path in ("/secrets", "/deployments", "/versions")
    )


def test_environment_variables_are_limited_as_on_cloudflare(client: TestClient) -> None:
    """At most 128 plain-text, JSON and secret bindings per Worker, counted together, through the
    secrets API and an upload's bindings (kept secrets included); 400 and nothing changes."""
    account = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/workers/scripts/many"
    plain = [{"name": f"VAR_{i}", "type": "plain_text", "text": "v"} for i in range(100)]
    assert client.put(base, headers=token, **upload_body(bindings=plain)).status_code == 200
    bulk = {f"S_{i}": {"text": "s", "type": "secret_text"} for i in range(28)}
    response = client.patch(base + "/secrets-bulk", headers=token, json={"secrets": bulk})
    assert response.status_code == 200, response.text  # 100 vars + 28 secrets = 128
    before = _state(client, base, token)
    one_more = {"name": "S_EXTRA", "text": "s", "type": "secret_text"}
    refused = [
        client.put(base + "/secrets", headers=token, json=one_more),
        client.patch(
            base + "/secrets-bulk",
            headers=token,
            json={"secrets": {"S_EXTRA": {"text": "s", "type": "secret_text"}}},
        ),
        client.patch(
            f"accounts/{account['id']}/workers/workers/many/versions/latest",
            headers=token,
            json={"env": {"S_EXTRA": {"text": "s", "type": "secret_text"}}},
        ),
        # An upload that keeps the 28 secrets and adds a 101st var.
        client.put(
            base,
            headers=token,
            **upload_body(
                bindings=[*plain, {"name": "JSON_VAR", "type": "json", "json": {"a": 1}}],
                keep_bindings=["secret_text"],
            ),
        ),
        # 129 in the upload itself.
        client.put(
            base,
            headers=token,
            **upload_body(
                bindings=[
                    {"name": f"X_{i}", "type": "secret_text", "text": "x"} for i in range(129)
                ]
            ),
        ),
    ]
    for response in refused:
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["code"] == 10021
        assert "128" in error["message"], error
    assert _state(client, base, token) == before
    # Replacing an existing secret at the limit is no new variable.
    again = {"name": "S_0", "text": "new", "type": "secret_text"}
    assert client.put(base + "/secrets", headers=token, json=again).status_code == 200


def test_an_environment_variable_is_at_most_5_kib(client: TestClient) -> None:
    account = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/workers/scripts/big"
    assert client.put(base, headers=token, **upload_body()).status_code == 200
    fits = {"name": "FITS", "text": "é" * 2560, "type": "secret_text"}  # 5,120 bytes
    assert client.put(base + "/secrets", headers=token, json=fits).status_code == 200
    before = _state(client, base, token)
    big = "x" * 5121
    refused = [
        client.put(
            base + "/secrets",
            headers=token,
            json={"name": "BIG", "text": big, "type": "secret_text"},
        ),
        client.put(
            base + "/secrets",
            headers=token,
            json={"name": "BIG", "text": "é" * 2561, "type": "secret_text"},
        ),
        client.patch(
            base + "/secrets-bulk",
            headers=token,
            json={"secrets": {"BIG": {"text": big, "type": "secret_text"}}},
        ),
        client.put(
            base,
            headers=token,
            **upload_body(bindings=[{"name": "BIG", "type": "secret_text", "text": big}]),
        ),
        client.put(
            base,
            headers=token,
            **upload_body(bindings=[{"name": "BIG", "type": "plain_text", "text": big}]),
        ),
        client.put(
            base,
            headers=token,
            **upload_body(bindings=[{"name": "BIG", "type": "json", "json": [big]}]),
        ),
    ]
    for response in refused:
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["code"] == 10021
        assert "5120 bytes" in error["message"], error
    assert _state(client, base, token) == before
