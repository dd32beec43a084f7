"""How fast the reaper deletes expired temporary accounts, and what it costs other tenants.

A real `mayfly serve` (SQLite, API only, reaper every 0.5 s) on free ports. The bench seeds
--accounts temporary accounts straight into its database, each with a Worker (a version, a module
and its blob file, a deployment), a KV namespace with --keys keys, an API token and an audit entry,
all expiring together a few seconds later. Meanwhile another tenant (a real account, provisioned
through the API) keeps calling the API: KV reads and writes, account and token lookups.

Printed: expired accounts deleted per second (from the first to the last `account.deleted` audit
entry the server wrote), and the other tenant's request latency (p50, p99) before the accounts
expire (baseline) and while the reaper deletes them, with the ratio. Target: >= 500 accounts/s.

    .venv/bin/python bench/reaper.py [--accounts 5000] [--keys 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from mayfly.sdk import pow
from mayfly.storage import tables
from mayfly.storage.database import Database

MAYFLY = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "mayfly"
MODULE = b"export default { fetch() { return new Response('expired soon'); } };\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}


def start_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [str(MAYFLY), "serve", "--api-port", str(port), "--workers-port", str(free_port())]
    args += ["--data-dir", str(directory / "data"), "--runtime", "false"]
    args += ["--reaper-interval", "0.5", "--pow-k", "8", "--pow-g", "50"]
    args += ["--log-level", "warning"]
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=clean_environment())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("mayfly serve did not start: " + (directory / "server.log").read_text())


def provision(api: httpx.Client) -> dict[str, Any]:
    challenge = api.post("provisioning/previews/challenge", content="{}").json()["result"]
    seed = pow.b64url_decode(challenge["seed"])
    solution = base64.b64encode(pow.solve(seed, challenge["k"], challenge["g"])).decode()
    created = api.post(
        "provisioning/previews",
        json={
            "acceptTermsOfService": "yes",
            "challengeToken": challenge["challengeToken"],
            "solution": {"checkpoints": solution},
        },
    )
    created.raise_for_status()
    account: dict[str, Any] = created.json()["result"]["account"]
    return account


def seed(db: Database, blob_root: Path, count: int, keys: int, expires_at: datetime) -> None:
    """`count` temporary accounts with content, written in large transactions."""
    now = datetime.now(UTC)
    digest = hashlib.sha256(MODULE).hexdigest()
    for start in range(0, count, 500):
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLE_ORDER}
        for i in range(start, min(count, start + 500)):
            account_id, script_id, version_id = (secrets.token_hex(16) for _ in range(3))
            namespace_id = secrets.token_hex(16)
            rows["accounts"].append(
                {
                    "id": account_id,
                    "name": f"bench-{i}-{secrets.token_hex(3)}",
                    "kind": "temporary",
                    "created_at": now,
                    "expires_at": expires_at,
                    "claim_token_hash": secrets.token_hex(32),
                }
            )
            rows["api_tokens"].append(
                {
                    "id": secrets.token_hex(16),
                    "token_hash": secrets.token_hex(32),
                    "account_id": account_id,
                    "name": "bench",
                    "kind": "temporary",
                    "created_at": now,
                    "expires_at": expires_at,
                }
            )
            rows["scripts"].append(
                {
                    "id": script_id,
                    "account_id": account_id,
                    "name": "hello",
                    "created_at": now,
                    "updated_at": now,
                    "current_version_id": version_id,
                    "subdomain_enabled": True,
                    "settings": {},
                }
            )
            rows["versions"].append(
                {
                    "id": version_id,
                    "script_id": script_id,
                    "account_id": account_id,
                    "number": 1,
                    "created_at": now,
                    "main_module": "index.js",
                    "compatibility_date": "2025-01-01",
                    "compatibility_flags": [],
                    "bindings": [],
                    "annotations": {},
                    "source": "wrangler",
                    "size": len(MODULE),
                    "handlers": ["fetch"],
                    "author": "bench@temporary",
                }
            )
            rows["modules"].append(
                {
                    "version_id": version_id,
                    "name": "index.js",
                    "kind": "esm",
                    "blob_sha256": digest,
                    "size": len(MODULE),
                }
            )
            rows["deployments"].append(
                {
                    "id": secrets.token_hex(16),
                    "script_id": script_id,
                    "account_id": account_id,
                    "version_id": version_id,
                    "created_at": now,
                    "annotations": {},
                    "source": "api",
                    "author": "bench@temporary",
                }
            )
            rows["blobs"].append({"account_id": account_id, "sha256": digest, "size": len(MODULE)})
            rows["kv_namespaces"].append(
                {"id": namespace_id, "account_id": account_id, "title": "t", "created_at": now}
            )
            rows["kv_entries"] += [
                {
                    "namespace_id": namespace_id,
                    "key": f"key-{k}",
                    "account_id": account_id,
                    "value": b"value",
                }
                for k in range(keys)
            ]
            rows["audit_events"].append(
                {
                    "account_id": account_id,
                    "event": "account.provisioned",
                    "actor": "bench",
                    "created_at": now,
                    "details": {},
                }
            )
            path = blob_root / account_id / digest[:2] / digest
            path.parent.mkdir(parents=True)
            path.write_bytes(MODULE)
        with db.begin() as conn:
            for name in TABLE_ORDER:
                if rows[name]:
                    conn.execute(insert(getattr(tables, name)), rows[name])


TABLE_ORDER = [
    "accounts",
    "api_tokens",
    "scripts",
    "versions",
    "modules",
    "deployments",
    "blobs",
    "kv_namespaces",
    "kv_entries",
    "audit_events",
]


class Tenant(threading.Thread):
    """Another tenant's API calls, one after the other, each with its start time and latency."""

    def __init__(self, url: str, account: dict[str, Any], namespace: str):
        super().__init__(daemon=True)
        self.url, self.account, self.namespace = url, account, namespace
        self.samples: list[tuple[float, float, int]] = []  # (started, seconds, status)
        self.stop = threading.Event()

    def run(self) -> None:
        a = self.account
        kv = f"accounts/{a['id']}/storage/kv/namespaces/{self.namespace}"
        calls = [
            ("GET", f"{kv}/values/k", None),
            ("PUT", f"{kv}/values/k", b"v2"),
            ("GET", f"{kv}/keys", None),
            ("GET", f"accounts/{a['id']}", None),
            ("GET", f"accounts/{a['id']}/tokens/verify", None),
        ]
        headers = {"authorization": f"Bearer {a['apiToken']}"}
        with httpx.Client(base_url=self.url + "/client/v4/", timeout=60) as api:
            n = 0
            while not self.stop.is_set():
                method, path, body = calls[n % len(calls)]
                started = time.time()
                response = api.request(method, path, content=body, headers=headers)
                self.samples.append((started, time.time() - started, response.status_code))
                n += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=3, help="KV keys per expired account")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mayfly-bench-reaper-") as tmp:
        directory = Path(tmp)
        process, url = start_server(directory)
        try:
            run(directory, url, args.accounts, args.keys)
        finally:
            process.terminate()
            process.wait(timeout=30)


def run(directory: Path, url: str, count: int, keys: int) -> None:
    data = directory / "data"
    db = Database(f"sqlite:///{data / 'mayfly.db'}")
    with httpx.Client(base_url=url + "/client/v4/", timeout=60) as api:
        tenant_account = provision(api)
        headers = {"authorization": f"Bearer {tenant_account['apiToken']}"}
        namespaces = f"accounts/{tenant_account['id']}/storage/kv/namespaces"
        created = api.post(namespaces, json={"title": "t"}, headers=headers).json()["result"]
        api.put(f"{namespaces}/{created['id']}/values/k", content=b"v", headers=headers)

    print(f"seeding {count} temporary accounts …", flush=True)
    started = time.monotonic()
    expires_at = datetime.now(UTC) + timedelta(seconds=3600)
    seed(db, data / "blobs", count, keys, expires_at)
    print(f"seeded in {time.monotonic() - started:.1f} s", flush=True)

    tenant = Tenant(url, tenant_account, created["id"])
    tenant.start()
    time.sleep(3)  # baseline: the other tenant alone
    expire_at = time.time()
    with db.begin() as conn:  # all expire now; the server's next reaper pass takes them
        conn.execute(
            tables.accounts.update()
            .where(tables.accounts.c.name.like("bench-%"))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with db.read() as conn:
            left = conn.execute(
                select(func.count())
                .select_from(tables.accounts)
                .where(tables.accounts.c.name.like("bench-%"))
            ).scalar_one()
        if not left:
            break
        time.sleep(0.2)
    blob_root = data / "blobs"
    while time.monotonic() < deadline and any(blob_root.iterdir()):
        time.sleep(0.05)
    files_gone_at = time.time()
    tenant.stop.set()
    tenant.join()

    with db.read() as conn:
        times = (
            conn.execute(
                select(tables.audit_events.c.created_at).where(
                    tables.audit_events.c.event == "account.deleted"
                )
            )
            .scalars()
            .all()
        )
        tombstones = conn.execute(select(func.count()).select_from(tables.tombstones)).scalar_one()
        leftovers = {
            name: conn.execute(select(func.count()).select_from(getattr(tables, name))).scalar_one()
            for name in ("scripts", "versions", "modules", "deployments", "blobs", "kv_entries")
        }
    db.dispose()
    first, last = min(times), max(times)
    seconds = max((last - first).total_seconds(), 1e-3)
    reaping_start, reaping_end = first.timestamp(), last.timestamp()
    baseline = [s for t, s, _ in tenant.samples if t < expire_at]
    during = [s for t, s, _ in tenant.samples if reaping_start <= t <= reaping_end]
    errors = sum(1 for _, _, status in tenant.samples if status >= 500)
    blob_dirs = sum(1 for _ in (data / "blobs").iterdir()) if (data / "blobs").exists() else 0

    print(
        f"deleted {len(times)} accounts in {seconds:.2f} s: {len(times) / seconds:.0f} accounts/s"
    )
    with_files = files_gone_at - reaping_start
    print(
        f"with their blob files: {with_files:.2f} s from the first deletion,"
        f" {len(times) / with_files:.0f} accounts/s"
    )
    print(f"tombstones {tombstones}; rows left {leftovers}; blob directories left {blob_dirs}")
    print(
        f"other tenant: {len(baseline)} requests before, {len(during)} while reaping, {errors} 5xx"
    )
    for label, values in (("baseline", baseline), ("reaping ", during)):
        if values:
            print(
                f"  {label} p50 {statistics.median(values) * 1000:6.1f} ms"
                f"   p99 {percentile(values, 0.99) * 1000:6.1f} ms"
            )
    if baseline and during:
        print(
            f"  p99 ratio (reaping / baseline): {percentile(during, 0.99) / percentile(baseline, 0.99):.1f}"
        )


if __name__ == "__main__":
    main()
