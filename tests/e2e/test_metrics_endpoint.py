"""`mayfly serve --metrics-port`: after some traffic, `curl :<port>/metrics` shows the mayfly_
metrics (API by route class, Worker route lookups: only what was not pushed to the shards,
provisioning, reaper, database pools)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import auth, provision, upload_body
from tests.e2e.conftest import free_port
from tests.e2e.test_logs import json_logging_server

pytestmark = pytest.mark.e2e


def test_metrics_after_traffic(tmp_path: Path) -> None:
    import httpx

    port = free_port()
    with json_logging_server(tmp_path, "--metrics-port", str(port)) as server:
        with httpx.Client(base_url=server.api_url + "/client/v4/", timeout=30) as api:
            account = provision(api)["account"]  # type: ignore[arg-type]
            deployed = api.put(
                f"accounts/{account['id']}/workers/scripts/hello",
                headers=auth(account["apiToken"]),
                **upload_body(),
            )
            assert deployed.status_code == 200, deployed.text
        assert server.get_worker(f"http://hello.{account['name']}.localhost").status_code == 200
        assert server.get_worker("http://nobody.nothing.localhost").status_code == 404
        url = f"http://127.0.0.1:{port}/metrics"
        if shutil.which("curl"):
            text = subprocess.run(
                ["curl", "-sf", url], capture_output=True, text=True, timeout=30, check=True
            ).stdout
        else:
            text = httpx.get(url).text
    template = "/client/v4/accounts/{account_id}/workers/scripts/{script}"
    assert f'mayfly_api_requests_total{{method="PUT",route="{template}",status="200"}} 1.0' in text
    assert "mayfly_api_request_duration_seconds_bucket" in text
    # The deploy pushed hello's route to the shards, so its request asked the control plane
    # nothing; the unknown host was looked up.
    assert 'mayfly_worker_route_lookups_total{status="ok"}' not in text
    assert 'mayfly_worker_route_lookups_total{status="unknown"}' in text
    assert "mayfly_provisioning_challenges_total 1.0" in text
    assert "mayfly_provisioning_accounts_total 1.0" in text
    for name in (
        "mayfly_provisioning_pow_failures_total",
        "mayfly_reaper_lag_seconds",
        "mayfly_reaper_pass_duration_seconds_count",
        'mayfly_db_pool_connections{pool="write",state="checked_out"}',
        "mayfly_quarantines_total",
        "mayfly_address_taints_total",
    ):
        assert name in text, name
    assert account["id"] not in text
