"""D1 databases (Cloudflare's /accounts/{id}/d1/database…), as wrangler 4 and the SDKs call them.

`wrangler d1 execute --remote --file` imports: `import` {action: init} answers an upload URL,
wrangler PUTs the file there (no token: the URL is signed, for one hour, for that database and
that MD5) and checks the ETag, then `import` {action: ingest} runs it. `wrangler d1 export` asks
`export` and downloads the SQL from the signed URL it answers.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mayfly.api.auth import account_access, actor, in_account, in_thread, services
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    OCTETS,
    PAGE_QUERY,
    STRING,
    array,
    component,
    nullable,
    obj,
    operation,
)
from mayfly.errors import PayloadTooLarge, ValidationError
from mayfly.model import Account, Principal
from mayfly.services.resources.d1 import limits_for

TAG = "D1"
EXPORT_CHUNK = 256 * 1024  # characters of a dump read (in a thread) and sent at a time
SIGNED_FOR = 3600  # seconds an upload or export URL stays valid
ETAG_RE = re.compile(r"^[0-9a-f]{32}$")
DATABASE = component(
    "d1-database",
    obj(
        {
            "uuid": STRING,
            "name": STRING,
            "created_at": STRING,
            "version": STRING,
            "file_size": INTEGER,
            "num_tables": INTEGER,
            "jurisdiction": nullable(STRING),
        },
        "uuid",
        "name",
    ),
)
QUERY_RESULT = component(
    "d1-query-result",
    obj({"results": {}, "success": BOOLEAN, "meta": ANY_OBJECT}, "success", "meta"),
)
STATEMENT = obj({"sql": {"type": "string", "minLength": 1}, "params": array({})}, "sql")
QUERY_BODY = {
    "application/json": {
        "oneOf": [STATEMENT, obj({"batch": array(STATEMENT, minItems=1)}, "batch")]
    }
}
QUERY_EXAMPLE = {"application/json": {"sql": "SELECT ?1 AS one", "params": ["1"]}}
# What /query and /raw both take and answer (they differ in the shape of `results`).
RUN_SQL: dict[str, Any] = {
    "tag": TAG,
    "body": QUERY_BODY,
    "body_required": True,
    "examples": QUERY_EXAMPLE,
    "result": array(QUERY_RESULT),
}


def _database(request: Request) -> str:
    return str(request.path_params["database_id"])


@operation(
    "POST",
    "Create a database",
    operation_id="cloudflare-d1-create-database",
    tag=TAG,
    body={"application/json": obj({"name": {"type": "string", "maxLength": 64}}, "name")},
    body_required=True,
    examples={"application/json": {"name": "my-database"}},
    result=DATABASE,
)
@operation(
    "GET",
    "The account's databases (`name` filters by name)",
    operation_id="cloudflare-d1-list-databases",
    tag=TAG,
    query={**PAGE_QUERY, "name": STRING},
    result=array(DATABASE),
    result_info=True,
)
async def databases(request: Request) -> Response:
    d1 = services(request).d1
    if request.method == "POST":
        who, account = await account_access(request)
        body = await json_body(request)
        return ok(
            await in_thread(lambda: d1.create_database(account, body.get("name"), actor(who)))
        )
    params = request.query_params

    def listed(_: Principal, account: Account) -> tuple[int, int, list[dict[str, Any]]]:
        try:  # checked after the caller (in its thread), as before
            page = max(1, int(params.get("page", "1")))
            per_page = min(10_000, max(1, int(params.get("per_page", "100"))))
        except ValueError as exc:
            raise ValidationError("page and per_page must be whole numbers.") from exc
        return page, per_page, d1.list_databases(account, params.get("name", ""))

    page, per_page, items = await in_account(request, listed)
    chunk = items[(page - 1) * per_page : page * per_page]
    return ok(
        chunk,
        result_info={
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
        },
    )


@operation(
    "GET",
    "One database, by UUID or name",
    operation_id="cloudflare-d1-get-database",
    tag=TAG,
    query={"fields": STRING},
    result=DATABASE,
)
@operation(
    "DELETE",
    "Delete a database and its data",
    operation_id="cloudflare-d1-delete-database",
    tag=TAG,
)
async def database(request: Request) -> Response:
    d1, name = services(request).d1, _database(request)
    if request.method == "GET":
        return ok(await in_account(request, lambda _, account: d1.get_database(account, name)))
    await in_account(request, lambda who, account: d1.delete_database(account, name, actor(who)))
    return ok(None)


@operation(
    "POST",
    "Run SQL: one or several statements (`sql`, `params`) or a `batch`, in one transaction",
    at="/query",
    operation_id="cloudflare-d1-query-database",
    **RUN_SQL,
)
@operation(
    "POST",
    "Run SQL, rows as arrays (`results`: {columns, rows})",
    at="/raw",
    operation_id="cloudflare-d1-raw-database-query",
    **RUN_SQL,
)
async def query(request: Request) -> Response:
    """`/query` answers rows as objects, `/raw` as arrays (`results`: {columns, rows})."""
    _, account = await account_access(request)
    body = await json_body(request)
    d1 = services(request).d1
    as_arrays = request.url.path.endswith("/raw")
    results = await d1.runner.call(d1.query, account, _database(request), body, as_arrays)
    return ok(results)


# -- signed URLs ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(request: Request, purpose: str, claims: dict[str, Any]) -> str:
    payload = _b64(
        json.dumps({**claims, "p": purpose, "exp": int(time.time()) + SIGNED_FOR}).encode()
    )
    return f"{payload}.{services(request).ctx.crypto.sign(payload.encode())}"


def _verify(request: Request, purpose: str, token: str) -> dict[str, Any]:
    payload, _, signature = token.partition(".")
    refused = ValidationError("This URL is not one Mayfly signed, or it expired.", status=403)
    if not signature or not services(request).ctx.crypto.verify(payload.encode(), signature):
        raise refused
    try:
        claims = json.loads(_unb64(payload))
    except ValueError as exc:
        raise refused from exc
    if not isinstance(claims, dict) or claims.get("p") != purpose:
        raise refused
    if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        raise refused
    return claims


async def _resolved(request: Request, account: Account) -> str:
    """The id of the database the path names by UUID or name (7404: not in the account)."""
    d1, name = services(request).d1, _database(request)
    return await in_thread(lambda: d1.resolve(account, name))


def _url(request: Request, path: str) -> str:
    return f"{services(request).ctx.settings.public_url}/client/v4{path}"


@operation(
    "POST",
    "Import SQL (wrangler d1 execute --file): init → upload URL, ingest → run it, poll",
    operation_id="cloudflare-d1-import-database",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "action": {"type": "string", "enum": ["init", "ingest", "poll"]},
                "etag": STRING,
                "filename": STRING,
                "current_bookmark": STRING,
            },
            "action",
        )
    },
    body_required=True,
    examples={"application/json": {"action": "poll"}},
    result=ANY_OBJECT,
)
async def import_sql(request: Request) -> Response:
    _, account = await account_access(request)
    body = await json_body(request)
    database_id = await _resolved(request, account)
    d1 = services(request).d1
    action = body.get("action")
    etag = body.get("etag")
    if action in ("init", "ingest") and not (isinstance(etag, str) and ETAG_RE.match(etag)):
        raise ValidationError("`etag` must be the file's MD5, in 32 lowercase hex digits.")
    if action == "init":
        limit = limits_for(services(request).ctx.settings, account.kind).max_bytes
        token = _sign(request, "d1-import", {"db": database_id, "etag": etag, "max": limit})
        return ok(
            {
                "success": True,
                "upload_url": _url(request, f"/d1/imports/{token}"),
                "filename": f"{database_id}.{etag}.sql",
            }
        )
    if action == "ingest":
        assert isinstance(etag, str)
        return ok(await d1.runner.call(d1.import_file, account, database_id, etag))
    if action == "poll":
        bookmark = await in_thread(lambda: d1.bookmark(database_id))
        return ok(
            {
                "success": True,
                "type": "import",
                "status": "complete",
                "at_bookmark": bookmark,
                "messages": [],
                "errors": [],
                "result": {
                    "success": True,
                    "num_queries": 0,
                    "final_bookmark": bookmark,
                    "meta": {"duration": 0, "rows_read": 0, "rows_written": 0, "size_after": 0},
                },
            }
        )
    raise ValidationError("`action` must be init, ingest or poll.")


@operation(
    "PUT",
    "The upload URL of an import: the SQL file itself (signed URL, no token); answers its ETag",
    tag=TAG,
    auth="none",
    body=OCTETS,
    raw={"text/plain": STRING},
)
async def import_upload(request: Request) -> Response:
    claims = _verify(request, "d1-import", str(request.path_params["token"]))
    database_id, etag = str(claims.get("db")), str(claims.get("etag"))
    if not ETAG_RE.match(etag):
        raise ValidationError("This URL is not one Mayfly signed, or it expired.", status=403)
    d1 = services(request).d1
    # The account's own database cap (signed in at init), not the permanent accounts' one.
    limit = claims.get("max")
    if isinstance(limit, bool) or not isinstance(limit, int):
        limit = limits_for(services(request).ctx.settings, "temporary").max_bytes
    folder = d1.uploads_dir()
    await in_thread(lambda: folder.mkdir(parents=True, exist_ok=True))
    partial = folder / f"{database_id}.{etag}.part"
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with partial.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"A D1 import file is at most {limit} bytes.")
                digest.update(chunk)
                await in_thread(functools.partial(out.write, chunk))
        if digest.hexdigest() != etag:
            raise ValidationError("The file's MD5 is not the ETag this upload URL was made for.")
        kept = d1.upload_path(database_id, etag)
        partial.replace(kept)
        # One pending import per database: every init signs a new URL, so uploads of different
        # files, never ingested, would otherwise pile up on disk until the hourly sweep.
        for older in folder.glob(f"{database_id}.*.sql"):
            if older != kept:
                older.unlink(missing_ok=True)
    finally:
        partial.unlink(missing_ok=True)
    return Response("", headers={"ETag": f'"{etag}"'})


@operation(
    "POST",
    "Export as SQL (wrangler d1 export): answers a signed URL to download the dump from",
    operation_id="cloudflare-d1-export-database",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "output_format": {"type": "string", "enum": ["polling"]},
                "current_bookmark": STRING,
                "dump_options": obj(
                    {"no_schema": BOOLEAN, "no_data": BOOLEAN, "tables": array(STRING)}
                ),
            }
        )
    },
    body_required=True,
    examples={"application/json": {"output_format": "polling", "dump_options": {}}},
    result=ANY_OBJECT,
)
async def export(request: Request) -> Response:
    _, account = await account_access(request)
    body = await json_body(request)
    database_id = await _resolved(request, account)
    d1 = services(request).d1
    options = body.get("dump_options") or {}
    if not isinstance(options, dict):
        raise ValidationError("dump_options must be an object.")
    tables = options.get("tables") or []
    if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
        raise ValidationError("dump_options.tables must be a list of table names.")
    claims = {
        "db": database_id,
        "no_schema": bool(options.get("no_schema")),
        "no_data": bool(options.get("no_data")),
        "tables": tables,
    }
    token = _sign(request, "d1-export", claims)
    bookmark = await in_thread(lambda: d1.bookmark(database_id))
    filename = f"{database_id}-{bookmark}.sql"
    return ok(
        {
            "success": True,
            "type": "export",
            "at_bookmark": bookmark,
            "status": "complete",
            "messages": ["Generated " + filename],
            "error": None,
            "result": {"filename": filename, "signed_url": _url(request, f"/d1/exports/{token}")},
        }
    )


@operation(
    "GET",
    "The SQL of an export (signed URL, no token)",
    tag=TAG,
    auth="none",
    raw={"application/sql": STRING},
)
async def export_download(request: Request) -> Response:
    claims = _verify(request, "d1-export", str(request.path_params["token"]))
    options = {k: claims.get(k) for k in ("no_schema", "no_data", "tables")}
    d1 = services(request).d1
    database_id = str(claims.get("db"))
    lines = await in_thread(lambda: d1.dump(database_id, options))
    # Streamed in bounded chunks: a dump held whole (and joined) took several times the
    # database's size in memory, once per concurrent download of a reusable URL.
    return StreamingResponse(_chunks(lines), media_type="application/sql")


def _take(lines: Iterator[str]) -> str:
    chunk: list[str] = []
    size = 0
    for line in lines:
        chunk.append(line + "\n")
        size += len(line) + 1
        if size >= EXPORT_CHUNK:
            break
    return "".join(chunk)


async def _chunks(lines: Iterator[str]) -> AsyncIterator[str]:
    try:
        while chunk := await in_thread(lambda: _take(lines)):
            yield chunk
    finally:
        close = getattr(lines, "close", None)
        if close is not None:  # the dump's read transaction and connection
            await in_thread(close)


D = "/accounts/{account_id}/d1/database"
routes = [
    Route(D, databases, methods=["GET", "POST"]),
    Route(D + "/{database_id}", database, methods=["GET", "DELETE"]),
    Route(D + "/{database_id}/query", query, methods=["POST"]),
    Route(D + "/{database_id}/raw", query, methods=["POST"]),
    Route(D + "/{database_id}/import", import_sql, methods=["POST"]),
    Route(D + "/{database_id}/export", export, methods=["POST"]),
    Route("/d1/imports/{token}", import_upload, methods=["PUT"]),
    Route("/d1/exports/{token}", export_download, methods=["GET"]),
]
