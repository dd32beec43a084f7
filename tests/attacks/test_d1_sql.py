"""A hostile tenant's SQL against its own D1 database (the SQLite engine, no server): what it
must not reach (other files, the server's memory layout) and what it must not grow without bound
(temp objects outside the size cap, results held in the server's memory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayfly.errors import D1QueryError
from mayfly.services.resources import d1_sql

LIMITS = d1_sql.Limits(max_bytes=1_000_000, timeout_ms=2_000)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    d1_sql.open_database(path).close()
    return path


def run(path: Path, sql: str) -> list[dict[str, object]]:
    statements = [d1_sql.Statement(s, []) for s in d1_sql.split_statements(sql)]
    return d1_sql.run(path, statements, LIMITS)[0]


def refused(path: Path, sql: str) -> str:
    with pytest.raises(D1QueryError) as caught:
        run(path, sql)
    return caught.value.message


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '/etc/passwd' AS x",
        "attach 'file:/tmp/other.sqlite?mode=rwc' as x",
        "VACUUM INTO '/tmp/stolen.sqlite'",
        "SELECT load_extension('/lib/x.so')",
        "PRAGMA writable_schema=1",
        "PRAGMA max_page_count=100000000",
        "PRAGMA main.journal_mode=DELETE",
        "PRAGMA temp_store=MEMORY",
        "SELECT * FROM pragma_database_list",
        "SELECT * FROM pragma_max_page_count",
        "UPDATE sqlite_master SET sql = 'x'",
        "BEGIN",
        "SAVEPOINT a",
    ],
)
def test_no_other_file_limit_or_schema_is_reachable(db: Path, sql: str) -> None:
    assert refused(db, sql).startswith("D1_ERROR")


def test_fts3_tokenizer_leaks_no_pointer(db: Path) -> None:
    # One argument answers the address of a tokenizer module (an ASLR leak); two set one.
    assert "fts3_tokenizer" in refused(db, "SELECT fts3_tokenizer('simple')")
    assert "fts3_tokenizer" in refused(db, "SELECT fts3_tokenizer('x', zeroblob(8))")


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TEMP TABLE t(a)",
        "CREATE TABLE temp.t(a)",
        "CREATE TABLE TEMP.t(a)",
        "CREATE VIRTUAL TABLE temp.f USING fts5(a)",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE TABLE m(a); CREATE TEMP TRIGGER tr AFTER INSERT ON m BEGIN SELECT 1; END",
    ],
)
def test_temp_objects_which_escape_the_size_cap_are_refused(db: Path, sql: str) -> None:
    assert "temporary" in refused(db, sql)


def test_temp_table_cannot_outgrow_the_database_cap(db: Path) -> None:
    # Before: 50 MB in a temp table of a 1 MB database, kept by the pooled connection.
    refused(db, "CREATE TEMP TABLE t(a)")
    message = refused(
        db,
        "INSERT INTO temp.t WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
        "WHERE i < 50) SELECT zeroblob(1000000) FROM c",
    )
    assert "no such table" in message


def test_results_are_capped_not_held_in_memory(db: Path) -> None:
    # 2 MB rows from an endless CTE: before, every row was kept (and turned into a list of ints)
    # until the deadline, gigabytes of the server's memory.
    message = refused(
        db,
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) "
        "SELECT zeroblob(1000000) FROM c",
    )
    assert "SQLITE_TOOBIG" in message
    # The cap is per request: many statements share it.
    many = ";".join(["SELECT zeroblob(1000000)"] * 10)
    assert "SQLITE_TOOBIG" in refused(db, many)
    assert run(db, "SELECT length(zeroblob(1000000)) AS n")[0]["results"] == [{"n": 1000000}]


def test_endless_query_is_cancelled_and_the_database_still_answers(db: Path) -> None:
    message = refused(
        db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT count(*) FROM c"
    )
    assert "SQLITE_INTERRUPT" in message
    assert run(db, "SELECT 1 AS one")[0]["results"] == [{"one": 1}]
