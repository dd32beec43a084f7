"""D1 through the v4 API: databases, query/raw, import (upload URL) and export, limits, isolation."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.storage import tables
from tests.conftest import auth, make_settings, provision


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def db_path(account: dict[str, Any]) -> str:
    return f"accounts/{account['id']}/d1/database"


def create(client: TestClient, account: dict[str, Any], name: str) -> dict[str, Any]:
    response = client.post(db_path(account), headers=auth(account["apiToken"]), json={"name": name})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def sql(
    client: TestClient, account: dict[str, Any], db: str, body: dict[str, Any], raw: bool = False
) -> Any:
    return client.post(
        f"{db_path(account)}/{db}/{'raw' if raw else 'query'}",
        headers=auth(account["apiToken"]),
        json=body,
    )


def local(path: str) -> str:
    """A signed URL's path on the test client (its base URL already ends in /client/v4/)."""
    return "http://testserver" + path


@pytest.fixture
def db_client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """On SQLite and on PostgreSQL (the rows; the databases' files are on disk either way)."""
    platform = Platform.create(make_settings(tmp_path, database_url=database_url))
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as c:
        yield c
    platform.db.dispose()


def test_create_list_get_delete(db_client: TestClient) -> None:
    client = db_client
    account = provision(client)["account"]
    token = auth(account["apiToken"])
    db = create(client, account, "app-db")
    assert db["name"] == "app-db" and len(db["uuid"]) == 36
    assert db["created_at"].endswith("Z")
    duplicate = client.post(db_path(account), headers=token, json={"name": "app-db"})
    assert duplicate.status_code == 400 and duplicate.json()["errors"][0]["code"] == 7502
    listed = client.get(db_path(account) + "?per_page=10&page=1", headers=token).json()
    assert [d["uuid"] for d in listed["result"]] == [db["uuid"]]
    # wrangler looks a database up by name as well as by UUID.
    by_name = client.get(f"{db_path(account)}/app-db?fields=uuid,name", headers=token).json()
    assert by_name["result"]["uuid"] == db["uuid"]
    assert (
        client.get(f"{db_path(account)}/{db['uuid']}", headers=token).json()["result"]["num_tables"]
        == 0
    )
    assert client.delete(f"{db_path(account)}/{db['uuid']}", headers=token).status_code == 200
    gone = client.get(f"{db_path(account)}/{db['uuid']}", headers=token)
    assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == 7404


def test_query_results_meta_and_raw(client: TestClient, account: dict[str, Any]) -> None:
    db = create(client, account, "q")["uuid"]
    made = sql(
        client,
        account,
        db,
        {
            "sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB);"
            "INSERT INTO t (name, data) VALUES ('a;b', x'0102'); -- a comment; with ;\n"
            "INSERT INTO t (name) VALUES ('c');"
        },
    ).json()
    assert made["success"] and len(made["result"]) == 3
    insert = made["result"][1]["meta"]
    assert insert["changes"] == 1 and insert["last_row_id"] == 1 and insert["changed_db"]
    assert insert["rows_written"] == 1 and insert["size_after"] > 0
    one = sql(client, account, db, {"sql": "SELECT * FROM t WHERE id = ?", "params": ["1"]})
    assert one.json()["result"][0]["results"] == [{"id": 1, "name": "a;b", "data": [1, 2]}]
    raw = sql(client, account, db, {"sql": "SELECT id, name FROM t ORDER BY id"}, raw=True)
    assert raw.json()["result"][0]["results"] == {
        "columns": ["id", "name"],
        "rows": [[1, "a;b"], [2, "c"]],
    }
    batch = sql(
        client,
        account,
        db,
        {
            "batch": [
                {"sql": "SELECT count(*) AS n FROM t"},
                {"sql": "SELECT ?1 AS v", "params": [7]},
            ]
        },
    )
    assert [r["results"][0] for r in batch.json()["result"]] == [{"n": 2}, {"v": 7}]


def test_errors_are_d1s_and_requests_are_atomic(
    client: TestClient, account: dict[str, Any]
) -> None:
    db = create(client, account, "atomic")["uuid"]
    sql(client, account, db, {"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY)"})
    failed = sql(
        client, account, db, {"sql": "INSERT INTO t VALUES (1); INSERT INTO nowhere VALUES (2);"}
    )
    assert failed.status_code == 400
    error = failed.json()["errors"][0]
    assert error["code"] == 7500 and "no such table: nowhere" in error["message"]
    assert "SQLITE_ERROR" in error["message"]
    count = sql(client, account, db, {"sql": "SELECT count(*) AS n FROM t"})
    assert count.json()["result"][0]["results"] == [{"n": 0}]  # the first insert rolled back
    for refused in (
        "BEGIN TRANSACTION",
        "ATTACH DATABASE '/etc/passwd' AS x",
        "PRAGMA max_page_count = 1000000000",
        "PRAGMA journal_mode = DELETE",
    ):
        answer = sql(client, account, db, {"sql": refused})
        assert answer.status_code == 400, refused
        assert answer.json()["errors"][0]["code"] == 7500, refused
    for bad in ({}, {"sql": ""}, {"sql": 5}, {"sql": "SELECT 1", "params": "x"}, {"batch": []}):
        answer = sql(client, account, db, bad)
        assert answer.status_code == 400 and not answer.json()["success"], bad


def test_another_account_cannot_reach_a_database(client: TestClient) -> None:
    owner, other = provision(client)["account"], provision(client)["account"]
    db = create(client, owner, "private")["uuid"]
    sql(client, owner, db, {"sql": "CREATE TABLE s (v TEXT); INSERT INTO s VALUES ('secret')"})
    # Through the other account's own path (its token, its account id) the database is absent.
    for method, suffix, body in (
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "/query", {"sql": "SELECT * FROM s"}),
        ("POST", "/raw", {"sql": "SELECT * FROM s"}),
        ("POST", "/export", {"output_format": "polling"}),
        ("POST", "/import", {"action": "init", "etag": "0" * 32}),
    ):
        answer = client.request(
            method, f"{db_path(other)}/{db}{suffix}", headers=auth(other["apiToken"]), json=body
        )
        assert answer.status_code == 404, (method, suffix, answer.text)
        assert answer.json()["errors"][0]["code"] == 7404
    # And the owner's path with the other's token is refused before anything is looked up.
    answer = sql(client, {**owner, "apiToken": other["apiToken"]}, db, {"sql": "SELECT 1"})
    assert answer.status_code in (401, 403)


def test_import_through_the_upload_url_and_export(
    client: TestClient, account: dict[str, Any]
) -> None:
    token = auth(account["apiToken"])
    db = create(client, account, "files")["uuid"]
    body = (
        "CREATE TABLE n (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);\n"
        "CREATE TRIGGER n_upper AFTER INSERT ON n BEGIN UPDATE n SET v = upper(v) "
        "WHERE id = new.id; END;\n"
        + "".join(f"INSERT INTO n (v) VALUES ('row {i}');\n" for i in range(50))
    ).encode()
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    init = client.post(
        f"{db_path(account)}/{db}/import", headers=token, json={"action": "init", "etag": etag}
    ).json()["result"]
    upload = urlsplit(init["upload_url"])
    assert client.put(local(upload.path), content=b"tampered").status_code == 400
    put = client.put(local(upload.path), content=body)  # no token: the URL is signed
    assert put.status_code == 200 and put.headers["etag"].strip('"') == etag
    forged = upload.path[:-3] + ("aaa" if not upload.path.endswith("aaa") else "bbb")
    assert client.put(local(forged), content=body).status_code == 403
    done = client.post(
        f"{db_path(account)}/{db}/import",
        headers=token,
        json={"action": "ingest", "etag": etag, "filename": init["filename"]},
    ).json()["result"]
    assert done["status"] == "complete" and done["result"]["num_queries"] == 52
    assert done["result"]["meta"]["rows_written"] >= 50
    rows = sql(client, account, db, {"sql": "SELECT v FROM n WHERE id = 3"}).json()
    assert rows["result"][0]["results"] == [{"v": "ROW 2"}]
    exported = client.post(
        f"{db_path(account)}/{db}/export",
        headers=token,
        json={"output_format": "polling", "dump_options": {}},
    ).json()["result"]
    assert exported["status"] == "complete"
    dump = client.get(local(urlsplit(exported["result"]["signed_url"]).path))
    assert dump.status_code == 200
    text = dump.text
    assert "CREATE TABLE n" in text and "INSERT INTO \"n\" VALUES(3,'ROW 2');" in text
    assert "CREATE TRIGGER n_upper" in text and "sqlite_sequence" in text
    # The dump loads into a fresh database and gives the same rows.
    copy = create(client, account, "copy")["uuid"]
    reloaded = sql(client, account, copy, {"sql": text})
    assert reloaded.status_code == 200, reloaded.text
    again = sql(client, account, copy, {"sql": "SELECT count(*) AS n FROM n"}).json()
    assert again["result"][0]["results"] == [{"n": 50}]


def test_size_limit_and_runaway_query(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, d1_max_database_bytes_temporary=64 * 1024, d1_query_timeout_ms_temporary=300
    )
    platform = Platform.create(settings)
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        account = provision(client)["account"]
        db = create(client, account, "small")["uuid"]
        sql(
            client,
            account,
            db,
            {
                "sql": "CREATE TABLE b (v BLOB); CREATE VIEW t10 AS WITH RECURSIVE c(x) AS "
                "(SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10) SELECT x FROM c"
            },
        )
        too_big = sql(client, account, db, {"sql": "SELECT zeroblob(3000000)"})
        assert too_big.status_code == 400 and "SQLITE_TOOBIG" in too_big.text
        full = sql(client, account, db, {"sql": "INSERT INTO b SELECT zeroblob(30000) FROM t10"})
        assert full.status_code == 400 and "Exceeded maximum DB size" in full.text
        # A query that would run for minutes is interrupted at its deadline, and the database
        # serves the next request at once.
        runaway = sql(
            client,
            account,
            db,
            {
                "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                "SELECT count(*) FROM c"
            },
        )
        assert runaway.status_code == 400 and "SQLITE_INTERRUPT" in runaway.text
        assert sql(client, account, db, {"sql": "SELECT 1 AS one"}).status_code == 200
    platform.db.dispose()


def test_housekeeping_forgets_the_targets_of_reaped_databases(
    platform: Platform, client: TestClient, clock: Any
) -> None:
    """A binding's query caches its database's target; the reaper deletes rows without the D1
    service, and housekeeping then drops the cached target (it kept them until 10,000)."""
    from mayfly.services.operations.housekeeping import Housekeeper

    d1 = platform.services.d1
    account = provision(client)["account"]
    kept = provision(client)["account"]
    gone = create(client, account, "gone")["uuid"]
    alive = create(client, kept, "alive")["uuid"]
    for database in (gone, alive):
        for _ in range(2):  # the first records the new file's size, which drops its target
            d1.query_bound(database, {"sql": "SELECT 1"})
    assert set(d1._targets) == {gone, alive}
    with platform.db.begin() as conn:  # `account` expires alone
        conn.execute(
            tables.accounts.update()
            .where(tables.accounts.c.id == account["id"])
            .values(expires_at=clock.now())
        )
    assert platform.services.reaper.reap_account(account["id"]) is not None
    asyncio.run(Housekeeper(platform.services).run_once())
    assert set(d1._targets) == {alive}
