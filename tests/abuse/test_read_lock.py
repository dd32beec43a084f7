"""Reads never take the write lock: two tenants' concurrent version listings of a large Worker
(20 versions of ~9.5 MB) leave another tenant's API and KV calls answered, never a 500 (how fast,
idle and during the listings: bench/read_lock.py).

Before, every transaction took SQLite's write lock and a listing re-read and regex-scanned every
version's main module: one listing took 27 s and the other tenant's calls answered 500 "database
is locked" (p50 10 s)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import solve_challenge
from tests.e2e.conftest import MAYFLY, Server, clean_environment, running_server

VERSIONS = 20
MODULE_BYTES = 9_500_000  # under the 10 MiB upload limit
TENANT_CALLS = 120


def big_module(i: int) -> bytes:
    head = b"export default { async fetch() { return new Response('big'); } };\n"
    line = b"// " + b"x" * 96 + b"\n"
    return head + f"// version {i}\n".encode() + line * ((MODULE_BYTES - len(head)) // len(line))


def permanent_account(server: Server) -> tuple[str, str]:
    command = ["admin", "account", "create", "bigco", "--json", "--data-dir", str(server.data_dir)]
    done = subprocess.run(
        [str(MAYFLY), *command],
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    created = json.loads(done.stdout)
    return created["account_id"], created["api_token"]


def temporary_account(api: httpx.Client) -> dict[str, Any]:
    challenge = api.post("provisioning/previews/challenge", content="{}").json()["result"]
    created = api.post(
        "provisioning/previews",
        json={
            "acceptTermsOfService": "yes",
            "challengeToken": challenge["challengeToken"],
            "solution": {"checkpoints": solve_challenge(challenge)},
        },
    )
    assert created.status_code == 200, created.text
    account: dict[str, Any] = created.json()["result"]["account"]
    return account


def upload(api: httpx.Client, path: str, token: str, i: int) -> None:
    meta = {"main_module": "index.js", "compatibility_date": "2025-01-01"}
    response = (api.put if i == 0 else api.post)(
        path if i == 0 else path + "/versions",
        headers={"authorization": f"Bearer {token}"},
        files=[
            ("metadata", (None, json.dumps(meta), "application/json")),
            ("index.js", ("index.js", big_module(i), "application/javascript+module")),
        ],
    )
    assert response.status_code == 200, response.text


def test_large_version_listings_do_not_stall_other_tenants(tmp_path: Path) -> None:
    with running_server(tmp_path, ttl=3600, runtime=False, pow_k=8, pow_g=50) as server:
        api = httpx.Client(base_url=server.api_url + "/client/v4/", timeout=120)
        account_id, token = permanent_account(server)
        script = f"accounts/{account_id}/workers/scripts/big"
        for i in range(VERSIONS):
            upload(api, script, token, i)

        other = temporary_account(api)
        other_auth = {"authorization": f"Bearer {other['apiToken']}"}
        kv = f"accounts/{other['id']}/storage/kv/namespaces"
        namespace = api.post(kv, json={"title": "t"}, headers=other_auth).json()["result"]["id"]
        value = f"{kv}/{namespace}/values/k"
        assert api.put(value, content=b"v", headers=other_auth).status_code == 200

        stop = threading.Event()
        listings: list[int] = []

        def list_versions() -> None:
            with httpx.Client(base_url=server.api_url + "/client/v4/", timeout=120) as mine:
                while not stop.is_set():
                    response = mine.get(
                        script + "/versions", headers={"authorization": f"Bearer {token}"}
                    )
                    listings.append(response.status_code)
                    assert len(response.json()["result"]["items"]) == VERSIONS

        listers = [threading.Thread(target=list_versions) for _ in range(2)]
        for thread in listers:
            thread.start()
        calls = [
            ("GET", value, None),
            ("PUT", value, b"v2"),
            ("GET", f"{kv}/{namespace}/keys", None),
            ("GET", f"accounts/{other['id']}", None),
            ("GET", f"accounts/{other['id']}/tokens/verify", None),
        ]
        statuses: list[int] = []
        try:
            while not listings:  # the listings have started
                time.sleep(0.01)
            for n in range(TENANT_CALLS):
                method, path, body = calls[n % len(calls)]
                response = api.request(method, path, content=body, headers=other_auth)
                statuses.append(response.status_code)
            assert not stop.is_set() and all(thread.is_alive() for thread in listers)
        finally:
            stop.set()
            for thread in listers:
                thread.join(timeout=120)
        api.close()

        assert [s for s in statuses if s >= 500] == [], server.log()
        assert all(s < 400 for s in statuses), statuses
        assert listings and all(status == 200 for status in listings)
