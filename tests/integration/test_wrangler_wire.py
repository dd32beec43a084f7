"""Response fields the real wrangler reads, found by the compat suite (tests/compat)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import auth, provision, upload_body


def test_version_upload_reports_a_startup_time(client: TestClient) -> None:
    """`wrangler versions upload` prints `Worker Startup Time: <startup_time_ms> ms` unconditionally."""
    account = provision(client)["account"]
    base = f"accounts/{account['id']}/workers/scripts/hello"
    token = auth(account["apiToken"])
    assert client.put(base, headers=token, **upload_body()).status_code == 200
    response = client.post(
        base + "/versions?bindings_inherit=strict", headers=token, **upload_body()
    )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert isinstance(result["startup_time_ms"], int)
    assert "script" in result["resources"]
