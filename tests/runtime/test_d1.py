"""D1 bindings in real workerd shards against the real control plane: Cloudflare's API
(prepare/bind, first, all, raw, run, batch, exec, withSession), what a Worker writes the API reads,
D1's errors, and no way from one account's binding to another account's database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

# One D1 program per request: POST {steps: [[method, sql, params, arg]...]} → {value} or {error}.
DRIVER = """
export default {
  async fetch(request, env) {
    const { op, sql, params = [], arg, statements } = await request.json();
    try {
      const db = env.DB;
      let value;
      if (op === "batch") {
        value = await db.batch(statements.map(([s, p]) => db.prepare(s).bind(...p)));
      } else if (op === "exec") {
        value = await db.exec(sql);
      } else if (op === "session") {
        const session = db.withSession("first-primary");
        value = { rows: (await session.prepare(sql).bind(...params).all()).results,
                  bookmark: session.getBookmark() };
      } else if (op === "blob") {
        await db.prepare("INSERT INTO blobs VALUES (?)").bind(new Uint8Array([1, 2, 255])).run();
        value = await db.prepare("SELECT v FROM blobs").first("v");
      } else if (op === "undefined") {
        value = await db.prepare("SELECT ?").bind(undefined).all();
      } else {
        value = await db.prepare(sql).bind(...params)[op](arg);
      }
      return Response.json({ value: value ?? null, isD1: db.constructor.name });
    } catch (err) {
      return Response.json({ error: String(err.message ?? err) });
    }
  },
};
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    settings = platform_settings(tmp_path_factory.mktemp("d1"), d1_query_timeout_ms_temporary=1000)
    live = LivePlatform(settings)
    yield live
    live.close()


class Tenant:
    def __init__(self, live: LivePlatform, script: str = "d1"):
        self.live = live
        self.account = live.provision()
        self.headers = auth(self.account["apiToken"])
        created = live.api.post(
            f"accounts/{self.account['id']}/d1/database", headers=self.headers, json={"name": "db"}
        )
        assert created.status_code == 200, created.text
        self.db = created.json()["result"]["uuid"]
        live.deploy(self.account, script, DRIVER, bindings=[self.binding(self.db)])
        self.host = live.host(self.account, script)

    @staticmethod
    def binding(database_id: str) -> dict[str, Any]:
        return {"type": "d1", "name": "DB", "id": database_id}

    def run(self, **request: Any) -> dict[str, Any]:
        with httpx.Client(timeout=60) as client:
            response = client.post(
                f"http://127.0.0.1:{self.live.port}/",
                headers={"host": self.host},
                content=json.dumps(request),
            )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def value(self, **request: Any) -> Any:
        answer = self.run(**request)
        assert "error" not in answer, answer
        return answer["value"]

    def api_query(self, sql: str) -> Any:
        response = self.live.api.post(
            f"accounts/{self.account['id']}/d1/database/{self.db}/query",
            headers=self.headers,
            json={"sql": sql},
        )
        assert response.status_code == 200, response.text
        return response.json()["result"]


def test_the_binding_speaks_d1(live: LivePlatform) -> None:
    t = Tenant(live)
    created = t.value(
        op="exec",
        sql="CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT UNIQUE, age INTEGER);\n"
        "CREATE TABLE blobs (v BLOB);",
    )
    assert created["count"] == 2
    ran = t.value(op="run", sql="INSERT INTO users (name, age) VALUES (?1, ?2)", params=["ann", 31])
    assert ran["success"] is True
    assert ran["meta"]["changes"] == 1 and ran["meta"]["last_row_id"] == 1
    assert ran["meta"]["changed_db"] is True and ran["meta"]["rows_written"] == 1
    assert t.run(op="run", sql="SELECT 1")["isD1"] == "D1Database"
    # batch: one transaction, results in order
    batch = t.value(
        op="batch",
        statements=[
            ["INSERT INTO users (name, age) VALUES (?, ?)", ["bob", 40]],
            ["SELECT count(*) AS n FROM users", []],
        ],
    )
    assert [r["success"] for r in batch] == [True, True]
    assert batch[1]["results"] == [{"n": 2}]
    failed = t.run(
        op="batch",
        statements=[
            ["INSERT INTO users (name, age) VALUES (?, ?)", ["cy", 1]],
            ["INSERT INTO users (name, age) VALUES (?, ?)", ["ann", 2]],
        ],
    )
    assert failed["error"].startswith("D1_ERROR: UNIQUE constraint failed: users.name")
    assert t.value(op="first", sql="SELECT count(*) AS n FROM users", arg="n") == 2  # atomic
    # first, all, raw
    assert t.value(op="first", sql="SELECT name, age FROM users WHERE id = ?", params=[2]) == {
        "name": "bob",
        "age": 40,
    }
    assert t.value(op="first", sql="SELECT name FROM users WHERE id = 99") is None
    missing = t.run(op="first", sql="SELECT name FROM users", arg="nope")
    assert missing["error"] == "D1_COLUMN_NOTFOUND: Column not found (nope)"
    everything = t.value(op="all", sql="SELECT name FROM users ORDER BY id")
    assert everything["results"] == [{"name": "ann"}, {"name": "bob"}]
    assert everything["meta"]["rows_read"] == 2
    assert t.value(op="raw", sql="SELECT id, name FROM users ORDER BY id") == [
        [1, "ann"],
        [2, "bob"],
    ]
    assert t.value(op="raw", sql="SELECT id FROM users ORDER BY id", arg={"columnNames": True}) == [
        ["id"],
        [1],
        [2],
    ]
    # withSession is a pass-through; blobs come back as byte arrays; errors are D1's
    session = t.value(op="session", sql="SELECT name FROM users WHERE age > ?", params=[35])
    assert session == {"rows": [{"name": "bob"}], "bookmark": None}
    assert t.value(op="blob") == [1, 2, 255]
    assert t.run(op="undefined")["error"].startswith("D1_TYPE_ERROR")
    bad = t.run(op="all", sql="SELECT * FROM nowhere")
    assert bad["error"] == "D1_ERROR: no such table: nowhere: SQLITE_ERROR"
    # What the Worker wrote, the API reads (wrangler d1 execute --remote sees it).
    assert t.api_query("SELECT name FROM users ORDER BY id")[0]["results"] == [
        {"name": "ann"},
        {"name": "bob"},
    ]


def test_a_binding_reaches_only_its_own_accounts_database(live: LivePlatform) -> None:
    owner, other = Tenant(live, "owner"), Tenant(live, "other")
    owner.value(op="exec", sql="CREATE TABLE secret (v TEXT); INSERT INTO secret VALUES ('s');")
    # An upload naming another account's database is refused before anything goes live.
    refused = live.api.put(
        f"accounts/{other.account['id']}/workers/scripts/thief",
        headers=other.headers,
        **_upload([Tenant.binding(owner.db)]),
    )
    assert refused.status_code == 400 and "does not exist in this account" in refused.text
    # Its own binding sees its own database only; no SQL reaches another file.
    assert "no such table: secret" in other.run(op="all", sql="SELECT * FROM secret")["error"]
    path = live.platform.services.d1.path(owner.db)
    attach = other.run(op="run", sql=f"ATTACH DATABASE '{path}' AS stolen")
    assert "SQLITE_AUTH" in attach["error"]


def _upload(bindings: list[dict[str, Any]]) -> dict[str, Any]:
    from tests.conftest import upload_body

    body: dict[str, Any] = upload_body(
        modules={"index.js": (DRIVER.encode(), "application/javascript+module")},
        compatibility_date="2025-01-01",
        bindings=bindings,
    )
    return body


def test_a_runaway_query_from_a_worker_is_cancelled(live: LivePlatform) -> None:
    t = Tenant(live, "runaway")
    forever = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    # An endless query: only the limit ends it (the message says the 1000 ms limit did).
    stopped = t.run(op="all", sql=forever)
    assert "time limit of 1000 ms" in stopped["error"], stopped
    assert "SQLITE_INTERRUPT" in stopped["error"], stopped
    # The database (and the control plane's thread) serve the next query at once.
    assert t.value(op="first", sql="SELECT 1 AS one", arg="one") == 1
