"""D1 queries/s from a Worker, against SQLite in-process as the baseline, in the same run.

Targets, each measured for --seconds per round, alternately (median of the rounds):

  sqlite    the same statement on a SQLite file in this process (WAL, synchronous=NORMAL, one
            connection kept open, autocommit): the floor of what a query costs;
  engine    Mayfly's D1 engine in this process (services/resources/d1_sql.run: a connection per
            request, limits, authorizer, progress handler, one transaction, D1's result shape);
  worker    a Worker deployed on Mayfly (real control plane, one real workerd shard) running
            `env.DB.prepare(…).bind(…)` per HTTP request, through the RPC stub, the dispatcher and
            the control plane's internal API; --clients concurrent HTTP clients.

Two statements: a point select by primary key (`select`) and an insert (`insert`). The Worker's
figures include its HTTP request, so a `worker` ratio is an upper bound on what D1 itself adds.
Also printed: this process's CPU time per Worker query (control plane + load generator; the shard
is another process), the machine being shared.

    .venv/bin/python bench/d1.py [--rounds 3] [--seconds 3] [--clients 8] [--rows 10000]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings

from mayfly.services.resources import d1_sql

WORKER = """
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const id = Number(url.searchParams.get("id"));
    if (url.pathname === "/select") {
      const row = await env.DB.prepare("SELECT v FROM t WHERE id = ?").bind(id).first();
      return new Response(row ? row.v : "missing");
    }
    const { meta } = await env.DB.prepare("INSERT INTO t (v) VALUES (?)").bind("x" + id).run();
    return new Response(String(meta.last_row_id));
  },
};
"""
SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"
SQL = {"select": "SELECT v FROM t WHERE id = ?", "insert": "INSERT INTO t (v) VALUES (?)"}


def rate(run_one: Callable[[int], None], seconds: float, clients: int = 1) -> tuple[float, int]:
    """(queries/s, queries) with `clients` threads calling run_one(i) until the time is up."""
    deadline = time.monotonic() + seconds
    counts = [0] * clients

    def loop(slot: int) -> None:
        i = slot
        while time.monotonic() < deadline:
            run_one(i)
            counts[slot] += 1
            i += clients

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(counts)
    return total / (time.monotonic() - started), total


def seed(rows: int) -> list[tuple[str, list[str]]]:
    fill = (
        "INSERT INTO t (v) SELECT 'v' || x FROM (WITH RECURSIVE c(x) AS "
        f"(SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {rows}) SELECT x FROM c)"
    )
    return [(SCHEMA, []), (fill, [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    rows = args.rows

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # sqlite: one connection, as an application embedding SQLite would hold it.
        plain = sqlite3.connect(
            root / "plain.sqlite3", isolation_level=None, check_same_thread=False
        )
        plain.execute("PRAGMA journal_mode=WAL")
        plain.execute("PRAGMA synchronous=NORMAL")
        for statement, params in seed(rows):
            plain.execute(statement, params)
        # engine: a D1 file, seeded through the engine.
        engine_file = root / "engine.sqlite3"
        limits = d1_sql.Limits(max_bytes=1 << 30, timeout_ms=30_000)
        d1_sql.run(engine_file, [d1_sql.Statement(s, p) for s, p in seed(rows)], limits)

        live = LivePlatform(platform_settings(root / "live", shards=1))
        try:
            account = live.provision()
            headers = auth(account["apiToken"])
            db = live.api.post(
                f"accounts/{account['id']}/d1/database", headers=headers, json={"name": "bench"}
            ).json()["result"]["uuid"]
            live.platform.services.d1.query_bound(
                db, {"batch": [{"sql": s, "params": p} for s, p in seed(rows)]}
            )
            live.deploy(
                account, "d1bench", WORKER, bindings=[{"type": "d1", "name": "DB", "id": db}]
            )
            host = live.host(account, "d1bench")
            local = threading.local()

            def worker(kind: str) -> Callable[[int], None]:
                def one(i: int) -> None:
                    client = getattr(local, "client", None)
                    if client is None:
                        client = local.client = httpx.Client(timeout=30)
                    response = client.get(
                        f"http://127.0.0.1:{live.port}/{kind}",
                        params={"id": str(i % rows + 1)},
                        headers={"host": host},
                    )
                    assert response.status_code == 200, response.text

                return one

            def sqlite_one(kind: str) -> Callable[[int], None]:
                return lambda i: plain.execute(
                    SQL[kind], [i % rows + 1 if kind == "select" else f"x{i}"]
                ).fetchall()

            def engine_one(kind: str) -> Callable[[int], None]:
                def one(i: int) -> None:
                    value = i % rows + 1 if kind == "select" else f"x{i}"
                    d1_sql.run(engine_file, [d1_sql.Statement(SQL[kind], [value])], limits)

                return one

            for kind in ("select", "insert"):
                worker(kind)(0)  # load the Worker (and warm the connection) before timing
                results: dict[str, list[float]] = {"sqlite": [], "engine": [], "worker": []}
                cpu_per_query: list[float] = []
                for _ in range(args.rounds):
                    results["sqlite"].append(rate(sqlite_one(kind), args.seconds)[0])
                    results["engine"].append(rate(engine_one(kind), args.seconds)[0])
                    cpu = time.process_time()
                    qps, count = rate(worker(kind), args.seconds, args.clients)
                    cpu_per_query.append((time.process_time() - cpu) * 1000 / max(1, count))
                    results["worker"].append(qps)
                base = statistics.median(results["sqlite"])
                print(f"{kind}:")
                for target, values in results.items():
                    median = statistics.median(values)
                    print(
                        f"  {target:7} {median:10.0f} queries/s   ratio to sqlite {median / base:.4f}"
                    )
                print(
                    f"  worker: {statistics.median(cpu_per_query):.2f} ms of this process's CPU "
                    f"per query (control plane + {args.clients} load clients)"
                )
        finally:
            live.close()
            plain.close()


if __name__ == "__main__":
    main()
