"""D1 databases: one SQLite file per database under the data dir, rows in `d1_databases`.

The account-scoped methods (the API) look the database up within the caller's account; the
`*_bound` ones (the data plane) take the id the platform put in the binding. Limits depend on the
owning account's kind: size of one database, time of one request, databases per account; its
bytes count in the account's storage quota (`quotas.d1_bytes`), checked when a write grows the
file. docs/d1.md describes the design.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.errors import (
    D1DatabaseNotFound,
    D1NameExists,
    QuotaExceeded,
    ValidationError,
)
from mayfly.model import Account, AccountKind, iso
from mayfly.services.context import ServiceContext
from mayfly.services.core import audit
from mayfly.services.core.owned import named_row
from mayfly.services.resources import d1_sql, quotas
from mayfly.services.resources.d1_import_export import D1ImportExport
from mayfly.services.resources.d1_runner import D1Runner
from mayfly.settings import Settings
from mayfly.storage.resource_tables import d1_databases
from mayfly.storage.tables import accounts

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_STATEMENTS = 10_000  # statements in one query body (a batch); a file may hold more
MAX_SQL_BYTES = 100_000  # one statement, as D1
TARGET_TTL = 2.0
MAX_TARGETS = 10_000


@dataclass(frozen=True)
class Target:
    id: str
    account_id: str
    kind: AccountKind
    size_bytes: int


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(
            "A D1 database needs a name of 1-64 letters, digits, '-' and '_' "
            "(starting with a letter or digit)."
        )
    return name


def limits_for(s: Settings, kind: AccountKind) -> d1_sql.Limits:
    if kind == "temporary":
        return d1_sql.Limits(s.d1_max_database_bytes_temporary, s.d1_query_timeout_ms_temporary)
    return d1_sql.Limits(s.d1_max_database_bytes_permanent, s.d1_query_timeout_ms_permanent)


def statements_of(body: Any) -> list[d1_sql.Statement]:
    """The statements of a query body: `{sql, params}` (sql may hold several statements) or
    `{batch: [{sql, params}, …]}`."""
    if not isinstance(body, dict):
        raise ValidationError("A D1 query body is a JSON object with `sql` (or `batch`).")
    if "batch" in body:
        items = body["batch"]
        if not isinstance(items, list) or not items:
            raise ValidationError("`batch` is a non-empty list of {sql, params}.")
        out = []
        for item in items:
            out.extend(statements_of(item if isinstance(item, dict) else None))
        if len(out) > MAX_STATEMENTS:
            raise ValidationError(f"A D1 request runs at most {MAX_STATEMENTS} statements.")
        return out
    sql, params = body.get("sql"), body.get("params")
    if not isinstance(sql, str) or not sql.strip():
        raise ValidationError("`sql` must be a non-empty string of SQL.")
    if params is None:
        params = []
    if not isinstance(params, list):
        raise ValidationError("`params` must be a list.")
    texts = d1_sql.split_statements(sql)
    if not texts:
        raise ValidationError("`sql` holds no statement.")
    if len(texts) > MAX_STATEMENTS:
        raise ValidationError(f"A D1 request runs at most {MAX_STATEMENTS} statements.")
    if params and len(texts) > 1:
        raise ValidationError("`params` can only be used with a single statement.")
    for text in texts:
        if len(text.encode()) > MAX_SQL_BYTES:
            raise ValidationError(f"A D1 statement is at most {MAX_SQL_BYTES} bytes.")
    return [d1_sql.Statement(text, params if i == 0 else []) for i, text in enumerate(texts)]


def database_files(root: Path, database_id: str) -> list[Path]:
    """A database's SQLite file and its WAL companions."""
    base = root / f"{database_id}.sqlite3"
    return [base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")]


def delete_database_files(data_dir: Path, database_ids: list[str]) -> None:
    """The files of deleted databases (their rows are gone: callers run this after the commit),
    and any import upload they left."""
    root = Path(data_dir) / "d1"
    for database_id in database_ids:
        d1_sql.POOL.close(root / f"{database_id}.sqlite3")
        for file in database_files(root, database_id):
            file.unlink(missing_ok=True)
        for upload in (root / "uploads").glob(f"{database_id}.*"):
            upload.unlink(missing_ok=True)


class D1Service(D1ImportExport):
    """D1 databases: made, listed, deleted, queried; export and import in d1_import_export.py."""

    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx
        self.root = Path(ctx.settings.data_dir) / "d1"
        # database id -> (Target, when it was read): a binding's queries skip the lookup for
        # TARGET_TTL seconds (a deleted database's file is gone at once, which _run checks; a
        # claim's new limits apply within TARGET_TTL).
        self._targets: dict[str, tuple[Target, float]] = {}
        self.runner = D1Runner()  # the API and the binding run queries through runner.call

    def path(self, database_id: str) -> Path:
        return self.root / f"{database_id}.sqlite3"

    def files(self, database_id: str) -> list[Path]:
        return database_files(self.root, database_id)

    def delete_files(self, database_ids: list[str]) -> None:
        delete_database_files(self.ctx.settings.data_dir, database_ids)

    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    def forget_targets(self) -> int:
        """Drop the cached targets that can no longer serve: past TARGET_TTL (the next query reads
        the row again anyway) or of a database deleted since (the reaper deletes rows without
        this service). Housekeeping calls it, so that the cache holds only databases in use, not
        every database queried since the last MAX_TARGETS. Returns how many were dropped."""
        now = time.monotonic()
        cached = list(self._targets.items())
        doomed = {key for key, (_, at) in cached if now - at > TARGET_TTL}
        recent = [key for key, _ in cached if key not in doomed]
        if recent:
            with self.ctx.db.read() as conn:
                alive = set(
                    conn.execute(
                        select(d1_databases.c.id).where(d1_databases.c.id.in_(recent))
                    ).scalars()
                )
            doomed.update(key for key in recent if key not in alive)
        for key in doomed:
            self._targets.pop(key, None)
        return len(doomed)

    def sweep_orphans(self, min_age_seconds: float) -> int:
        """Delete files of databases that have no row (a crash between a deletion's commit and
        its file removal) and import uploads never run, once `min_age_seconds` old. Files are
        listed before the rows are read, and a database's file is created after its row, so a
        live database's file is never taken for an orphan."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - min_age_seconds
        files = [p for p in self.root.iterdir() if p.is_file() and ".sqlite3" in p.name]
        uploads = list(self.uploads_dir().glob("*")) if self.uploads_dir().is_dir() else []
        with self.ctx.db.read() as conn:
            known = set(conn.execute(select(d1_databases.c.id)).scalars())
        removed = 0
        for path in files:
            if path.name.split(".", 1)[0] in known:
                continue
            try:
                if path.stat().st_mtime > cutoff:
                    continue
                d1_sql.POOL.close(self.root / (path.name.split(".", 1)[0] + ".sqlite3"))
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
        for path in uploads:
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    # -- databases -------------------------------------------------------------------------------

    def _render(self, row: Any, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uuid": row.id,
            "name": row.name,
            "created_at": iso(row.created_at),
            "version": "production",
            "file_size": int(row.size_bytes),
            "jurisdiction": None,
        }
        if full:
            out["num_tables"] = self._num_tables(row.id)
            out["running_in_region"] = "local"
            out["read_replication"] = {"mode": "disabled"}
        return out

    def _num_tables(self, database_id: str) -> int:
        if not self.path(database_id).exists():
            return 0
        with d1_sql.POOL.connection(self.path(database_id), 30) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'"
                ).fetchone()[0]
            )

    def create_database(self, account: Account, name: Any, actor: str) -> dict[str, Any]:
        name = check_name(name)
        database_id = str(uuid.uuid4())
        now = self.ctx.clock.now()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with self.ctx.db.begin() as conn:
                try:
                    quotas.require_room(
                        conn, self.ctx.settings, account.id, account.kind, quotas.D1_DATABASES
                    )
                except QuotaExceeded as exc:
                    raise QuotaExceeded(exc.message, code=7406) from exc
                if named_row(conn, d1_databases.c.name, account.id, name) is not None:
                    raise D1NameExists("A database with that name already exists")
                conn.execute(
                    insert(d1_databases).values(
                        id=database_id,
                        account_id=account.id,
                        name=name,
                        created_at=now,
                        size_bytes=0,
                    )
                )
                audit.record(
                    conn, account.id, "d1.database_created", actor, now, database_id=database_id
                )
        except IntegrityError as exc:
            raise D1NameExists("A database with that name already exists") from exc
        d1_sql.open_database(self.path(database_id)).close()
        row = self._row_by_id(database_id)
        answer = self._render(row)
        answer["created_in_region"] = "local"
        return answer

    def _row_by_id(self, database_id: str) -> Any:
        with self.ctx.db.read() as conn:
            return conn.execute(select(d1_databases).where(d1_databases.c.id == database_id)).one()

    def list_databases(self, account: Account, name: str = "") -> list[dict[str, Any]]:
        query = select(d1_databases).where(d1_databases.c.account_id == account.id)
        if name:
            query = query.where(d1_databases.c.name == name)
        with self.ctx.db.read() as conn:
            rows = conn.execute(query.order_by(d1_databases.c.created_at, d1_databases.c.id)).all()
        return [self._render(r) for r in rows]

    def _database(self, conn: Connection, account: Account, id_or_name: str) -> Any:
        """By UUID or by name (wrangler looks databases up by either), within the account."""
        row = conn.execute(
            select(d1_databases).where(
                d1_databases.c.account_id == account.id,
                or_(d1_databases.c.id == id_or_name, d1_databases.c.name == id_or_name),
            )
        ).first()
        if row is None:
            raise D1DatabaseNotFound(f"The database {id_or_name} could not be found")
        return row

    def get_database(self, account: Account, id_or_name: str) -> dict[str, Any]:
        with self.ctx.db.read() as conn:
            row = self._database(conn, account, id_or_name)
        return self._render(row, full=True)

    def delete_database(self, account: Account, id_or_name: str, actor: str) -> None:
        with self.ctx.db.begin() as conn:
            row = self._database(conn, account, id_or_name)
            conn.execute(delete(d1_databases).where(d1_databases.c.id == row.id))
            audit.record(
                conn,
                account.id,
                "d1.database_deleted",
                actor,
                self.ctx.clock.now(),
                database_id=row.id,
            )
        self.delete_files([row.id])

    # -- queries ---------------------------------------------------------------------------------

    def _target(self, database_id: str, account: Account | None) -> Target:
        query = (
            select(d1_databases.c.id, d1_databases.c.account_id, d1_databases.c.size_bytes)
            .add_columns(accounts.c.kind)
            .join(accounts, accounts.c.id == d1_databases.c.account_id)
            .where(d1_databases.c.id == database_id)
        )
        if account is not None:
            query = query.where(d1_databases.c.account_id == account.id)
        with self.ctx.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise D1DatabaseNotFound(f"The database {database_id} could not be found")
        kind: AccountKind = "permanent" if row.kind == "permanent" else "temporary"
        return Target(row.id, row.account_id, kind, int(row.size_bytes))

    def resolve(self, account: Account, id_or_name: str) -> str:
        with self.ctx.db.read() as conn:
            return str(self._database(conn, account, id_or_name).id)

    def query(
        self, account: Account, id_or_name: str, body: Any, raw: bool = False
    ) -> list[dict[str, Any]]:
        statements = statements_of(body)
        target = self._target(self.resolve(account, id_or_name), account)
        return self._run(target, statements, raw)

    def query_bound(self, database_id: str, body: Any, raw: bool = False) -> list[dict[str, Any]]:
        """A binding's request: the platform fixed the database id."""
        statements = statements_of(body)
        cached = self._targets.get(database_id)
        if cached is None or time.monotonic() - cached[1] > TARGET_TTL:
            if len(self._targets) > MAX_TARGETS:
                self._targets.clear()
            cached = (self._target(database_id, None), time.monotonic())
            self._targets[database_id] = cached
        return self._run(cached[0], statements, raw)

    def _run(
        self, target: Target, statements: list[d1_sql.Statement], raw: bool
    ) -> list[dict[str, Any]]:
        with self.runner.slot(target.account_id):
            return self._run_in_slot(target, statements, raw)

    def _run_in_slot(
        self, target: Target, statements: list[d1_sql.Statement], raw: bool
    ) -> list[dict[str, Any]]:
        path = self.path(target.id)
        if not path.exists():
            raise D1DatabaseNotFound(f"The database {target.id} could not be found")

        def admit_growth(growth: int) -> None:
            now = int(self.ctx.clock.now().timestamp())
            with self.ctx.db.read() as conn:
                quotas.require_bytes(
                    conn, self.ctx.settings, target.account_id, target.kind, growth, now
                )

        results, before, after = d1_sql.run(
            path,
            statements,
            limits_for(self.ctx.settings, target.kind),
            raw=raw,
            admit_growth=admit_growth,
        )
        if after != before or after != target.size_bytes:
            self._targets.pop(target.id, None)
            with self.ctx.db.begin() as conn:
                conn.execute(
                    update(d1_databases)
                    .where(d1_databases.c.id == target.id)
                    .values(size_bytes=after)
                )
        return results

    def exec_bound(self, database_id: str, sql: Any) -> dict[str, Any]:
        """`db.exec(sql)`: every statement, no parameters; D1 answers the count and time."""
        started = time.perf_counter()
        results = self.query_bound(database_id, {"sql": sql})
        return {"count": len(results), "duration": (time.perf_counter() - started) * 1000}
