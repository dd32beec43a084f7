"""SQL on one D1 database's own SQLite file, as D1 runs it.

Statements are split where SQLite itself would end them (quotes, comments and trigger bodies kept
whole); one request runs in one transaction (`BEGIN IMMEDIATE`: D1 runs one request at a time per
database), so a batch or a file is all or nothing. What a tenant's SQL may touch is checked by an
authorizer when each statement is prepared: no ATTACH/DETACH (no other file is reachable), no
transaction statements (the request's transaction is the platform's) and only harmless PRAGMAs
(never max_page_count or journal_mode). Limits: the file may not grow past `max_bytes`
(`PRAGMA max_page_count`, checked by SQLite on every page it allocates), and a request that runs
past its deadline is interrupted by the progress handler, so it never keeps a worker thread.
Results and `meta` are shaped as D1's HTTP API and binding return them.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayfly.errors import D1QueryError
from mayfly.services.resources.d1_pool import Busy, Pool

PROGRESS_STEPS = 1000  # SQLite VM instructions between two looks at the clock
TRANSACTION_MESSAGE = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic write "
    "coalescing."
)
# PRAGMAs D1 lets tenants run: introspection and per-connection switches, nothing that changes
# the file's limits or format.
ALLOWED_PRAGMAS = frozenset(
    {
        "table_list",
        "table_info",
        "table_xinfo",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "foreign_keys",
        "defer_foreign_keys",
        "quick_check",
        "integrity_check",
        "optimize",
        "case_sensitive_like",
        "ignore_check_constraints",
        "legacy_alter_table",
        "recursive_triggers",
        "reverse_unordered_selects",
        "collation_list",
        "function_list",
        "pragma_list",
        "data_version",
        "page_count",
        "page_size",
        "freelist_count",
    }
)
DDL_WORDS = ("CREATE", "DROP", "ALTER")
MAX_VALUE_BYTES = 2_000_000  # D1's largest string, BLOB or row
# Mayfly's own cap on one request's rows, counted as their JSON carries them (a BLOB byte is up to
# four characters): 2 MB rows from an endless CTE would otherwise fill the server's memory before
# the deadline.
MAX_RESULT_BYTES = 16 * 1024 * 1024
# Objects of the connection's temp schema: not capped by max_page_count and kept by the pooled
# connection from one request to the next, so a tenant could grow them without bound.
# (CREATE TEMP … or CREATE … temp.name, which SQLite reports as a plain CREATE in schema "temp").
TEMP_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
    }
)
CREATE_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_VTABLE,
    }
)
# Functions no tenant may call: load_extension loads code, fts3_tokenizer answers (and, with two
# arguments, takes) a raw pointer into the server's memory.
REFUSED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    timeout_ms: int


@dataclass(frozen=True)
class Statement:
    sql: str
    params: list[Any]


def split_statements(sql: str) -> list[str]:
    """The statements of `sql`, each ending where SQLite would end it; empty ones dropped."""
    statements: list[str] = []
    start, i, n, has_code = 0, 0, len(sql), False
    while i < n:
        c = sql[i]
        if c in "'\"`[":
            j = sql.find("]" if c == "[" else c, i + 1)
            i, has_code = (n if j < 0 else j + 1), True
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ";":
            piece = sql[start : i + 1]
            if not has_code:
                start = i + 1
            elif sqlite3.complete_statement(piece):  # not inside a trigger's BEGIN … END
                statements.append(piece.strip())
                start, has_code = i + 1, False
            i += 1
        else:
            has_code = has_code or not c.isspace()
            i += 1
    if has_code:
        statements.append(sql[start:].strip())
    return statements


class Authorizer:
    """What a tenant's statement may do, checked by SQLite as it prepares it; remembers why it
    refused, for the error message."""

    def __init__(self) -> None:
        self.refusal = ""

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, _: Any
    ) -> int:
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            self.refusal = "ATTACH and DETACH are not allowed in D1"
        elif action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            self.refusal = TRANSACTION_MESSAGE
        elif action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in ALLOWED_PRAGMAS:
            self.refusal = f"PRAGMA {arg1} is not allowed in D1"
        elif action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in REFUSED_FUNCTIONS:
            self.refusal = f"{(arg2 or '').lower()}() is not allowed in D1"
        elif action in TEMP_ACTIONS or (action in CREATE_ACTIONS and (db or "").lower() == "temp"):
            self.refusal = "temporary tables, indexes, views and triggers are not allowed in D1"
        else:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY


def bind_value(value: Any) -> Any:
    """A parameter as SQLite takes it: booleans are 0/1, {"$blob": [bytes…]} a blob."""
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, (int, float, str)):
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise D1QueryError(f"D1_TYPE_ERROR: Number {value} is out of range for INTEGER.")
        return value
    if isinstance(value, dict) and isinstance(value.get("$blob"), list):
        try:
            return bytes(value["$blob"])
        except (TypeError, ValueError) as exc:
            raise D1QueryError("D1_TYPE_ERROR: A blob is a list of bytes (0-255).") from exc
    raise D1QueryError(f"D1_TYPE_ERROR: Type '{type(value).__name__}' not supported for value.")


def _out(value: Any) -> Any:
    if isinstance(value, bytes):
        return list(value)  # D1 answers a BLOB as an array of byte values
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def open_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


POOL = Pool(open_database)


def file_bytes(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(pages) * int(size)


def _error(exc: sqlite3.Error, limits: Limits, timed_out: bool, refusal: str) -> D1QueryError:
    name = getattr(exc, "sqlite_errorname", "SQLITE_ERROR") or "SQLITE_ERROR"
    primary = "_".join(name.split("_")[:2])
    if timed_out or primary == "SQLITE_INTERRUPT":
        return D1QueryError(
            f"D1_ERROR: The query exceeded its time limit of {limits.timeout_ms} ms and was "
            "cancelled: SQLITE_INTERRUPT"
        )
    if primary == "SQLITE_FULL":
        return D1QueryError(
            f"D1_ERROR: Exceeded maximum DB size ({limits.max_bytes} bytes): SQLITE_FULL"
        )
    if primary == "SQLITE_AUTH":
        return D1QueryError(f"D1_ERROR: not authorized: {refusal or exc}: SQLITE_AUTH")
    if primary == "SQLITE_BUSY":
        return D1QueryError(
            "D1_ERROR: D1 DB is overloaded. Requests queued for too long.: SQLITE_BUSY"
        )
    return D1QueryError(f"D1_ERROR: {exc}: {primary}")


def run(
    path: Path,
    statements: list[Statement],
    limits: Limits,
    *,
    raw: bool = False,
    admit_growth: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], int, int]:
    """Run `statements` in one transaction; returns (results, size before, size after).

    `admit_growth(bytes)` is asked before the commit when the file grew (the account's quota);
    raising rolls the request back.
    """
    deadline = time.monotonic() + limits.timeout_ms / 1000
    timed_out = False
    authorizer = Authorizer()

    def progress() -> int:
        nonlocal timed_out
        timed_out = time.monotonic() > deadline
        return 1 if timed_out else 0

    try:
        with POOL.connection(path, limits.timeout_ms / 1000) as conn:
            return _run(conn, statements, limits, raw, admit_growth, progress, authorizer)
    except Busy as exc:
        raise D1QueryError(
            "D1_ERROR: D1 DB is overloaded. Requests queued for too long.: SQLITE_BUSY"
        ) from exc
    except sqlite3.Error as exc:
        raise _error(exc, limits, timed_out, authorizer.refusal) from exc
    except (sqlite3.Warning, ValueError, OverflowError, MemoryError) as exc:
        # Two statements in one piece, a NUL or a lone surrogate in the SQL, a huge number.
        raise D1QueryError(f"D1_ERROR: {exc}: SQLITE_ERROR") from exc


def _run(
    conn: sqlite3.Connection,
    statements: list[Statement],
    limits: Limits,
    raw: bool,
    admit_growth: Callable[[int], None] | None,
    progress: Callable[[], int],
    authorizer: Authorizer,
) -> tuple[list[dict[str, Any]], int, int]:
    """One request on its database's connection (the caller holds it alone)."""
    before = file_bytes(conn)
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    ceiling = max(limits.max_bytes, before) // page_size
    conn.execute(f"PRAGMA max_page_count={max(1, ceiling)}")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    busy_ms = max(1, limits.timeout_ms)
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("BEGIN IMMEDIATE")
    conn.set_progress_handler(progress, PROGRESS_STEPS)
    conn.set_authorizer(authorizer)
    try:
        budget = [MAX_RESULT_BYTES]
        results = [_execute(conn, s, raw, budget) for s in statements]
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)
        after = file_bytes(conn)
        if after > before and admit_growth is not None:
            admit_growth(after - before)
        conn.execute("COMMIT")
    except BaseException:
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    for result in results:
        result["meta"]["size_after"] = after
    return results, before, after


def _json_size(value: Any) -> int:
    if isinstance(value, bytes):
        return 4 * len(value)
    if isinstance(value, str):
        return len(value) + 2
    return 8


def _fetch(cursor: sqlite3.Cursor, budget: list[int]) -> list[list[Any]]:
    """The cursor's rows, as long as the request's results stay within `budget[0]` bytes."""
    rows: list[list[Any]] = []
    while batch := cursor.fetchmany(64):
        for row in batch:
            budget[0] -= sum(_json_size(v) for v in row) + 2
            if budget[0] < 0:
                raise D1QueryError(
                    f"D1_ERROR: The results of this request exceed {MAX_RESULT_BYTES} bytes; "
                    "select fewer rows or columns: SQLITE_TOOBIG"
                )
            rows.append([_out(v) for v in row])
    return rows


def _execute(
    conn: sqlite3.Connection, statement: Statement, raw: bool, budget: list[int]
) -> dict[str, Any]:
    started = time.perf_counter()
    changes_before = conn.total_changes
    cursor = conn.execute(statement.sql, [bind_value(v) for v in statement.params])
    columns = [d[0] for d in cursor.description or ()]
    rows = _fetch(cursor, budget) if columns else []
    changes = conn.total_changes - changes_before
    duration = (time.perf_counter() - started) * 1000
    changed = changes > 0 or statement.sql.lstrip().upper().startswith(DDL_WORDS)
    results: Any
    if raw:
        results = {"columns": columns, "rows": rows}
    else:
        results = [dict(zip(columns, row, strict=True)) for row in rows]
    return {
        "results": results,
        "success": True,
        "meta": {
            "served_by": "mayfly",
            "served_by_region": "local",
            "served_by_primary": True,
            "timings": {"sql_duration_ms": duration},
            "duration": duration,
            "changes": changes,
            "last_row_id": cursor.lastrowid or 0,
            "changed_db": changed,
            "size_after": 0,
            "rows_read": len(rows) + (changes if not columns else 0),
            "rows_written": changes,
            "total_attempts": 1,
        },
    }


# -- export ---------------------------------------------------------------------------------------


def dump(path: Path, *, no_schema: bool, no_data: bool, tables: list[str]) -> Iterator[str]:
    """The database as SQL, as `wrangler d1 export` writes it (tables, data, then indexes,
    triggers and views); `tables` limits it to those tables."""
    conn = open_database(path)
    try:
        conn.execute("BEGIN")
        yield "PRAGMA defer_foreign_keys=TRUE;"
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' "
            "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid"
        ).fetchall()
        wanted = set(tables)
        for kind, name, table, sql in objects:
            if wanted and table not in wanted:
                continue
            if kind != "table":
                if not no_schema:
                    yield f"{sql};"
                continue
            if not no_schema:
                yield f"{sql};"
            if not no_data:
                yield from _rows(conn, name)
        if not no_data and (not wanted or "sqlite_sequence" in wanted):
            has_sequence = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'"
            ).fetchone()
            if has_sequence:
                for seq_name, seq in conn.execute("SELECT name, seq FROM sqlite_sequence"):
                    if not wanted or seq_name in wanted:
                        yield (
                            "INSERT INTO sqlite_sequence VALUES("
                            f"{_quote_value(seq_name)},{_quote_value(seq)});"
                        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex().upper()}'"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def _rows(conn: sqlite3.Connection, table: str) -> Iterator[str]:
    quoted = _quote_identifier(table)
    for row in conn.execute(f"SELECT * FROM {quoted}"):  # noqa: S608 (a quoted identifier)
        yield f"INSERT INTO {quoted} VALUES({','.join(_quote_value(v) for v in row)});"
