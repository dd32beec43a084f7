"""`mayfly serve --log-format json` at DEBUG through a whole account's life: provisioning, a deploy,
a secret, a KV put, a claim with a password through the pages, a dashboard token. Every log line
is one JSON object, and no credential or secret value is in the logs."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import auth, provision, upload_body
from tests.e2e.conftest import Server
from tests.integration.test_claim_support import PASSWORD, Web, claim_path
from tests.serve import serving

pytestmark = pytest.mark.e2e

SECRET_WORKER = b"""
export default {
  async fetch(request, env) {
    const stored = await env.STORE.get("k");
    return new Response(`secret ${env.API_KEY.length} kv ${stored.length}`);
  },
};
"""


@contextmanager
def json_logging_server(directory: Path, *extra: str) -> Iterator[Server]:
    """JSON logs at debug level in server.log (stderr only: the banner on stdout is dropped)."""
    flags = ["--pow-k", "8", "--pow-g", "50", "--log-level", "debug", "--log-format", "json"]
    with serving(Server, directory, *flags, "--shards", "1", *extra, stdout_to_log=False) as server:
        yield server


def test_json_logs_of_a_whole_run_hold_no_credential(tmp_path: Path) -> None:
    secret_value = "sv-" + secrets.token_hex(16)
    kv_value = "kv-" + secrets.token_hex(16)
    with json_logging_server(tmp_path) as server:
        with httpx.Client(base_url=server.api_url + "/client/v4/", timeout=30) as api:
            created = provision(api)  # type: ignore[arg-type]
            account = created["account"]
            token = auth(account["apiToken"])
            base = f"accounts/{account['id']}"
            ns = api.post(f"{base}/storage/kv/namespaces", headers=token, json={"title": "s"})
            ns_id = ns.json()["result"]["id"]
            put = api.put(
                f"{base}/storage/kv/namespaces/{ns_id}/values/k", headers=token, content=kv_value
            )
            assert put.status_code == 200, put.text
            binding = {"name": "STORE", "type": "kv_namespace", "namespace_id": ns_id}
            deployed = api.put(
                f"{base}/workers/scripts/hello",
                headers=token,
                **upload_body(
                    modules={"index.js": (SECRET_WORKER, "application/javascript+module")},
                    bindings=[binding],
                ),
            )
            assert deployed.status_code == 200, deployed.text
            secret = {"name": "API_KEY", "text": secret_value, "type": "secret_text"}
            stored = api.put(f"{base}/workers/scripts/hello/secrets", headers=token, json=secret)
            assert stored.status_code == 200, stored.text
        host = f"http://hello.{account['name']}.localhost"
        served = server.get_worker(host)
        assert served.text == f"secret {len(secret_value)} kv {len(kv_value)}"

        with httpx.Client(base_url=server.api_url, follow_redirects=False, timeout=30) as client:
            browser = Web(client)  # type: ignore[arg-type]
            signed_up = browser.signup("ada@example.com", next_url=claim_path(created))
            assert signed_up.status_code == 303, signed_up.text
            cookie = signed_up.headers["set-cookie"].split(";")[0].split("=", 1)[1]
            browser.get(claim_path(created))
            claimed = browser.post(claim_path(created), {"action": "keep"})
            assert claimed.status_code == 303, claimed.text
            account_path = f"/dashboard/accounts/{account['id']}"
            page = browser.post(f"{account_path}/tokens", {"name": "t"}, page=account_path)
            new_token = page.text.split('id="new-token">', 1)[1].split("<", 1)[0]
            assert new_token.startswith("mfp_")
    logs = server.log()

    entries = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert entries, "no log line"
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
    assert any(e["level"] == "debug" for e in entries)
    claim_token = created["claim"]["url"].rsplit("/", 1)[1]
    values = {
        "API token": account["apiToken"],
        "claim token": claim_token,
        "password": PASSWORD,
        "session cookie": cookie,
        "dashboard token": new_token,
        "secret value": secret_value,
        "KV value": kv_value,
    }
    for what, value in values.items():
        assert value not in logs, f"the {what} is in the logs"
    assert "mft_" + account["apiToken"][4:12] not in logs
