"""Request metrics are labelled by the route's path template, never the raw path."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, provision, upload_body


def samples(platform: Platform) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = platform.services.ctx.metrics.exposition().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_routes_are_templates_and_provisioning_is_counted(
    platform: Platform, client: TestClient
) -> None:
    account = provision(client)["account"]
    for script in ("one", "two"):
        deployed = client.put(
            f"accounts/{account['id']}/workers/scripts/{script}",
            headers=auth(account["apiToken"]),
            **upload_body(),
        )
        assert deployed.status_code == 200
    bad = client.post(
        "provisioning/previews",
        json={"acceptTermsOfService": "yes", "challengeToken": "x", "solution": {}},
    )
    assert bad.status_code in (400, 403)
    assert client.get("no/such/route").status_code == 404

    found = samples(platform)
    requests = found["mayfly_api_requests_total"]
    template = "/client/v4/accounts/{account_id}/workers/scripts/{script}"
    uploads = [v for labels, v in requests if labels["route"] == template]
    assert uploads == [2.0], requests
    assert not any(account["id"] in labels["route"] for labels, _ in requests)
    assert any(labels["route"] == "unmatched" for labels, _ in requests)
    assert found["mayfly_provisioning_challenges_total"][0][1] == 1.0
    assert found["mayfly_provisioning_accounts_total"][0][1] == 1.0
    assert "mayfly_api_request_duration_seconds_bucket" in found
    assert "mayfly_reaper_lag_seconds" in found
    # The adaptive proof of work: test settings ask k=8, g=50 at most (and at least).
    assert found["mayfly_provisioning_pow_work"][0][1] == 400.0
    assert 0.0 < found["mayfly_provisioning_pow_pressure"][0][1] <= 1.0
    assert any(labels["pool"] == "write" for labels, _ in found["mayfly_db_pool_connections"])
