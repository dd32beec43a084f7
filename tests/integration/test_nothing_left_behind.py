"""Growth: a long-running server keeps nothing per temporary account once it expired.

The real platform (control plane + real workerd shards, tests/runtime/harness.py) provisions N
temporary accounts, each using every feature (a Worker with static assets, two versions, secrets,
a cron trigger, a KV namespace and values, an R2 bucket with an object and a multipart upload left
unfinished, a D1 database, a tail with its WebSocket and the logs it carries, an event code, the
claim page, failed log-ins, a proof-of-work challenge never solved, an asset upload session never
finished). Then the clock moves past their expiry and the reaper and housekeeping run: every table
of the schema (iterated from the metadata, so a new table is covered), every file and directory
under the data dir, and the server's per-key memory (limiters, tails, D1's maps, the route pusher,
each shard's dispatcher) must be back where they were before, except the tombstones and audit
entries kept on purpose, which must go once their retention passed.

`MAYFLY_GROWTH_ACCOUNTS` (default 3) sets N: `MAYFLY_GROWTH_ACCOUNTS=200 .venv/bin/pytest -q
tests/integration/test_nothing_left_behind.py` is the full sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from websockets.sync.client import ClientConnection, connect

from mayfly.services.operations.housekeeping import Housekeeper
from mayfly.services.resources import d1_sql
from mayfly.storage import tables
from tests.conftest import auth, solve_challenge
from tests.integration.test_claim_support import cheap_password_hashing, claim_path, web
from tests.runtime.assets_support import upload_assets
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

ACCOUNTS = int(os.environ.get("MAYFLY_GROWTH_ACCOUNTS", "3"))
# How long a shard keeps an answer nobody asks for (stale_route; 600 s by default).
STALE_ROUTE = 1.0

WORKER = """
export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    console.log("visit", pathname);
    if (pathname === "/work") {
      await env.KV.put("from-worker", "1");
      await env.KV.put("short", "x", { expirationTtl: 600 });
      await env.BUCKET.put("from-worker", "bytes " + pathname);
      const upload = await env.BUCKET.createMultipartUpload("unfinished");
      await upload.uploadPart(1, "a part never completed");
      await env.DB.exec("CREATE TABLE IF NOT EXISTS t (x)");
      await env.DB.prepare("INSERT INTO t VALUES (?)").bind(1).run();
      return new Response("worked " + env.SECRET);
    }
    return env.ASSETS.fetch(request);
  },
  async scheduled() {},
};
"""

SITE = {"/index.html": b"<h1>hi</h1>", "/style.css": b"h1 { color: red }"}


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LivePlatform]:
    require_workerd()
    cheap_password_hashing(monkeypatch)
    settings = platform_settings(
        tmp_path,
        logins_per_minute=10_000,
        login_failures_per_address=10_000,
        shards=1,
    )
    live = LivePlatform(settings, stale_route=STALE_ROUTE)
    yield live
    live.close()


# -- what is kept ----------------------------------------------------------------------------------


def row_counts(live: LivePlatform) -> dict[str, int]:
    with live.platform.db.read() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in tables.metadata.sorted_tables
        }


def data_files(live: LivePlatform) -> set[str]:
    """Every file and directory under the data dir but the platform's own database and key."""
    root = live.settings.data_dir
    own = {"mayfly.db", "mayfly.db-wal", "mayfly.db-shm", "secret.key"}
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.name not in own}


def memory(live: LivePlatform) -> dict[str, int]:
    """Sizes of the long-lived server's structures keyed by account, token, address or host."""
    svc = live.platform.services
    sizes = {
        f"limiter {name}": len(limiter) for name, limiter in Housekeeper(svc).named_limiters.items()
    }
    hub = svc.tails.hub
    sizes["tail sessions"] = len(hub)
    sizes["tail tokens"] = len(hub._by_token)
    sizes["tailed workers"] = len(hub._tailed)
    sizes["d1 targets"] = len(svc.d1._targets)
    sizes["d1 in flight"] = len(svc.d1.runner._in_flight)
    sizes["d1 open connections"] = len(d1_sql.POOL._entries)
    pusher = live.platform.route_pusher
    sizes["pushed routes (control plane)"] = len(pusher._known or {})
    for index, shard in enumerate(live.shards()):
        health = live.loop.run(shard.probe(5.0))  # each probe also lets it forget idle hosts
        for what in ("routes", "pushed", "hot"):
            sizes[f"shard {index} {what}"] = health[what]
    return sizes


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {k: (before.get(k, 0), v) for k, v in after.items() if v > before.get(k, 0)}


def memory_growth(live: LivePlatform, before: dict[str, int]) -> dict[str, tuple[int, int]]:
    """What grew, once the shards had STALE_ROUTE to forget the hosts nobody asks for."""
    with contextlib.suppress(AssertionError):
        live.wait_for(lambda: not grown(before, memory(live)), timeout=STALE_ROUTE * 10)
    return grown(before, memory(live))


# -- one account using everything -----------------------------------------------------------------


class Tenant:
    def __init__(self, live: LivePlatform, event_code: str, index: int):
        self.live = live
        self.index = index
        self.provisioned = self._provision(event_code)
        self.account = self.provisioned["account"]
        self.headers = auth(self.account["apiToken"])
        self.base = f"accounts/{self.account['id']}"

    def _provision(self, event_code: str) -> dict[str, Any]:
        api = self.live.api
        challenge = api.post("provisioning/previews/challenge", content="{}").json()["result"]
        body: dict[str, Any] = {
            "acceptTermsOfService": "yes",
            "challengeToken": challenge["challengeToken"],
            "solution": {"checkpoints": solve_challenge(challenge)},
        }
        if self.index % 2:
            body["eventCode"] = event_code
        response = api.post("provisioning/previews", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        return result

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.live.api.request(
            method, f"{self.base}/{path}", headers=self.headers, **kwargs
        )
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def use_everything(self) -> None:
        kv = self.call("POST", "storage/kv/namespaces", json={"title": "store"})["id"]
        self.live.api.put(
            f"{self.base}/storage/kv/namespaces/{kv}/values/greeting",
            headers=self.headers,
            content=b"hello",
        ).raise_for_status()
        self.call("POST", "r2/buckets", json={"name": "bucket"})
        self.live.api.put(
            f"{self.base}/r2/buckets/bucket/objects/from-api",
            headers=self.headers,
            content=b"object bytes",
        ).raise_for_status()
        db = self.call("POST", "d1/database", json={"name": "db"})["uuid"]
        self.call("POST", f"d1/database/{db}/query", json={"sql": "CREATE TABLE api (y)"})
        bindings = [
            {"type": "kv_namespace", "name": "KV", "namespace_id": kv},
            {"type": "r2_bucket", "name": "BUCKET", "bucket_name": "bucket"},
            {"type": "d1", "name": "DB", "id": db},
            {"type": "assets", "name": "ASSETS"},
        ]
        for round_ in range(2):  # two versions, the second with its own asset
            files = {**SITE, "/round.txt": f"round {round_}".encode()}
            completion, _ = upload_assets(self.live, self.account, "site", files)
            metadata = {
                "main_module": "index.js",
                "compatibility_date": "2025-01-01",
                "bindings": bindings,
                "assets": {"jwt": completion, "config": {}},
            }
            self.live.api.put(
                f"{self.base}/workers/scripts/site",
                headers=self.headers,
                files=[
                    ("metadata", (None, json.dumps(metadata), "application/json")),
                    ("index.js", ("index.js", WORKER.encode(), "application/javascript+module")),
                ],
            ).raise_for_status()
        self.call(
            "PUT",
            "workers/scripts/site/secrets",
            json={"name": "SECRET", "text": "s3", "type": "secret_text"},
        )
        self.call("PUT", "workers/scripts/site/schedules", json=[{"cron": "*/30 * * * *"}])
        # An asset upload session never finished (its files never sent).
        upload_session = self.live.api.post(
            f"{self.base}/workers/scripts/other/assets-upload-session",
            headers=self.headers,
            json={"manifest": {"/never.txt": {"hash": f"{self.index:032x}", "size": 5}}},
        )
        assert upload_session.status_code == 200, upload_session.text
        # A proof-of-work challenge issued and never solved.
        self.live.api.post("provisioning/previews/challenge", content="{}").raise_for_status()

    def host(self) -> str:
        return self.live.host(self.account, "site")

    @contextlib.contextmanager
    def tail(self) -> Iterator[ClientConnection]:
        created = self.call("POST", "workers/scripts/site/tails", json={"filters": []})
        url = urlsplit(created["url"])
        url = url._replace(netloc=f"127.0.0.1:{self.live.public_port}")
        with connect(url.geturl(), subprotocols=["trace-v1"]) as ws:
            ws.send(json.dumps({"debug": False}))
            yield ws


def live_and_expire(live: LivePlatform, event_code: str, count: int) -> None:
    """`count` accounts use everything, then expire; the reaper and housekeeping run as
    `mayfly serve` runs them."""
    svc = live.platform.services
    housekeeper = Housekeeper(svc)
    with contextlib.ExitStack() as open_sockets:
        tenants = [Tenant(live, event_code, i) for i in range(count)]
        for tenant in tenants:
            tenant.use_everything()
            ws = open_sockets.enter_context(tenant.tail())
            assert live.get(tenant.host(), "/work").text == "worked s3"
            assert live.get(tenant.host(), "/style.css").status_code == 200
            assert json.loads(ws.recv(timeout=15))["logs"][0]["message"] == ["visit", "/work"]
            # The claim page, as a human who has not logged in sees it, and failed log-ins.
            with web(live.platform) as browser:
                assert browser.get(claim_path(tenant.provisioned)).status_code == 200
                failed = browser.login(f"nobody{tenant.index}@example.com", "wrong")
                assert failed.status_code == 401
        used = row_counts(live)
        assert used["r2_uploads"] >= count and used["asset_upload_sessions"] >= count
        assert used["d1_databases"] == count and used["worker_schedules"] == count

        live.clock.offset += timedelta(seconds=live.settings.temporary_ttl + 1)
        assert live.loop.run(svc.reaper.run_once()) == count
        live.loop.run(housekeeper.run_once())
        live.loop.run(housekeeper.sweep_tails())
        for tenant in tenants:
            assert live.get(tenant.host(), "/style.css").status_code == 410


def test_expired_accounts_leave_nothing_behind(live: LivePlatform) -> None:
    svc = live.platform.services
    event = svc.provisioning.events.create("growth", accounts_max=10_000, ttl=3600)
    # One account first, so that what is made once (directories, lazily built state) exists.
    live_and_expire(live, event.code, 1)
    rows_before, files_before = row_counts(live), data_files(live)
    memory_before = memory(live)

    live_and_expire(live, event.code, ACCOUNTS)
    rows = row_counts(live)
    kept_on_purpose = {"tombstones", "audit_events"}
    assert grown(rows_before, {k: v for k, v in rows.items() if k not in kept_on_purpose}) == {}
    assert rows["tombstones"] - rows_before["tombstones"] == ACCOUNTS
    assert data_files(live) - files_before == set()
    assert memory_growth(live, memory_before) == {}

    # Past the tombstones' cooldown and the audit retention, those go too.
    retention = max(live.settings.tombstone_cooldown, live.settings.audit_retention)
    live.clock.offset += timedelta(seconds=retention + 1)
    live.loop.run(svc.reaper.run_once())
    live.loop.run(Housekeeper(svc).run_once())
    assert row_counts(live)["tombstones"] == 0
    assert grown(rows_before, row_counts(live)) == {}
    assert memory_growth(live, memory_before) == {}
