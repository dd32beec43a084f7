"""Another tenant's API and KV calls while two clients list a large Worker's versions (20 versions of
~9.5 MB), against the same calls idle, in the same run (not run in CI; tests/abuse/test_read_lock.py
checks that they are answered and never 500, this measures how fast).

Before reads stopped taking SQLite's write lock: one listing took 27 s and the other tenant's p50
was 10 s (500 "database is locked"); since: a few ms, as idle.

    .venv/bin/python bench/read_lock.py [--calls 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.abuse.test_read_lock import (
    VERSIONS,
    permanent_account,
    temporary_account,
    upload,
)
from tests.e2e.conftest import running_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=120)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp), ttl=3600, runtime=False, pow_k=8, pow_g=50) as server,
        httpx.Client(base_url=server.api_url + "/client/v4/", timeout=120) as api,
    ):
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
        calls = [
            ("GET", value, None),
            ("PUT", value, b"v2"),
            ("GET", f"{kv}/{namespace}/keys", None),
            ("GET", f"accounts/{other['id']}", None),
            ("GET", f"accounts/{other['id']}/tokens/verify", None),
        ]

        def tenant_p50() -> float:
            latencies = []
            for n in range(args.calls):
                method, path, body = calls[n % len(calls)]
                started = time.monotonic()
                response = api.request(method, path, content=body, headers=other_auth)
                latencies.append(time.monotonic() - started)
                assert response.status_code < 400, response.text
            return statistics.median(latencies)

        tenant_p50()  # warm-up
        idle = tenant_p50()
        stop = threading.Event()
        listings: list[float] = []

        def list_versions() -> None:
            headers = {"authorization": f"Bearer {token}"}
            with httpx.Client(base_url=server.api_url + "/client/v4/", timeout=120) as mine:
                while not stop.is_set():
                    started = time.monotonic()
                    assert mine.get(script + "/versions", headers=headers).status_code == 200
                    listings.append(time.monotonic() - started)

        listers = [threading.Thread(target=list_versions) for _ in range(2)]
        for thread in listers:
            thread.start()
        try:
            while not listings:
                time.sleep(0.01)
            during = tenant_p50()
        finally:
            stop.set()
            for thread in listers:
                thread.join(timeout=120)
    print(f"listing: p50 {statistics.median(listings):.2f} s ({len(listings)} listings)")
    print(f"other tenant p50 idle:            {idle * 1000:8.1f} ms")
    print(f"other tenant p50 during listings: {during * 1000:8.1f} ms ({during / idle:.1f}x idle)")


if __name__ == "__main__":
    main()
