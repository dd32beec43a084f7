"""The internal API behind R2 bindings (runtime/r2.js), on the internal listener only.

The bucket id in the path is the one the platform put in the binding's props; the key travels as a
query parameter, so no key names another bucket. Options come as JSON in one header, the object's
description goes back as JSON in another, the bytes as the body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mayfly.api.auth import in_thread, services
from mayfly.errors import MayflyError, ValidationError
from mayfly.services.core import strict_json
from mayfly.services.resources.r2_uploads import receive

OPTIONS_HEADER = "x-mayfly-r2-options"
OBJECT_HEADER = "x-mayfly-r2-object"
Handler = Callable[[Request], Awaitable[Response]]


def _options(request: Request) -> dict[str, Any]:
    raw = request.headers.get(OPTIONS_HEADER)
    if not raw:
        return {}
    options = strict_json.loads(raw, "The R2 options")
    if not isinstance(options, dict):
        raise ValidationError("The R2 options must be an object.")
    return options


def _answering(handler: Handler) -> Handler:
    """Domain errors as {error, code} with their status, as the binding reports them."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except MayflyError as exc:
            retry_after = getattr(exc, "retry_after", None)
            headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
            body = {"error": exc.message, "code": exc.code}
            return JSONResponse(body, status_code=exc.status, headers=headers)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc), "code": 10021}, status_code=400)

    return wrapped


def _receive(request: Request, bucket: str, **where: Any) -> AbstractAsyncContextManager[bytes]:
    """The object body, checked (size, quota) before it is read and held in the upload gate."""
    svc = services(request)
    length = request.headers.get("content-length")
    return receive(svc.ctx, svc.r2.uploads, request.stream(), length, bucket, **where)


def _described(described: dict[str, Any] | None, body: bytes | None = None) -> Response:
    if described is None:
        return Response(b"", status_code=412)
    headers = {OBJECT_HEADER: json.dumps(described, ensure_ascii=True)}
    if body is None:
        headers["x-mayfly-r2-body"] = "none"
    return Response(body or b"", media_type="application/octet-stream", headers=headers)


@_answering
async def r2_object(request: Request) -> Response:
    r2 = services(request).r2
    bucket = request.path_params["bucket_id"]
    key = request.query_params.get("key", "")
    options = _options(request)
    if request.method == "GET":
        read = await in_thread(
            lambda: r2.get_object(
                bucket,
                key,
                only_if=options.get("onlyIf"),
                range_spec=options.get("range"),
                head=request.query_params.get("head") == "1",
            )
        )
        return _described(read.object, read.body)
    async with _receive(request, bucket, key=key) as data:
        stored = await in_thread(
            lambda: r2.put_object(
                bucket,
                key,
                data,
                http=options.get("httpMetadata"),
                custom=options.get("customMetadata"),
                checksums=options.get("checksums"),
                only_if=options.get("onlyIf"),
            )
        )
    return _described(stored)


@_answering
async def r2_delete(request: Request) -> Response:
    keys = strict_json.loads(await request.body(), "The keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValidationError("delete() takes a key or a list of keys.")
    r2, bucket = services(request).r2, request.path_params["bucket_id"]
    await in_thread(lambda: r2.delete_objects(bucket, keys))
    return JSONResponse({"ok": True})


@_answering
async def r2_list(request: Request) -> Response:
    options = _options(request)
    include = options.get("include") or []
    if not isinstance(include, list) or not set(include) <= {"httpMetadata", "customMetadata"}:
        raise ValidationError('include takes "httpMetadata" and "customMetadata".')
    limit = options.get("limit", 1000)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValidationError("limit must be a whole number.")
    strings = {
        name: options.get(name) or "" for name in ("prefix", "delimiter", "cursor", "startAfter")
    }
    if not all(isinstance(v, str) for v in strings.values()):
        raise ValidationError("prefix, delimiter, cursor and startAfter must be strings.")
    r2, bucket = services(request).r2, request.path_params["bucket_id"]
    page = await in_thread(
        lambda: r2.list_objects(
            bucket,
            prefix=strings["prefix"],
            delimiter=strings["delimiter"],
            cursor=strings["cursor"],
            start_after=strings["startAfter"],
            limit=limit,
            include=tuple(include),
        )
    )
    return JSONResponse(page)


@_answering
async def r2_multipart(request: Request) -> Response:
    """POST create|complete, PUT a part, DELETE abort; the upload id and part in the query."""
    multipart = services(request).r2_multipart
    bucket = request.path_params["bucket_id"]
    params = request.query_params
    key, upload_id = params.get("key", ""), params.get("upload_id", "")
    options = _options(request)
    action = request.path_params["action"]
    if request.method == "POST" and action == "create":
        created = await in_thread(
            lambda: multipart.create(
                bucket, key, options.get("httpMetadata"), options.get("customMetadata")
            )
        )
        return JSONResponse({"uploadId": created, "key": key})
    if request.method == "PUT" and action == "part":
        number = params.get("part_number", "")
        if not number.isdigit():
            raise ValidationError("partNumber must be a whole number.")
        where = {"upload_id": upload_id, "part_number": int(number)}
        async with _receive(request, bucket, **where) as data:
            part = await in_thread(
                lambda: multipart.upload_part(bucket, key, upload_id, int(number), data)
            )
        return JSONResponse(part)
    if request.method == "POST" and action == "complete":
        parts = strict_json.loads(await request.body(), "The parts")
        stored = await in_thread(lambda: multipart.complete(bucket, key, upload_id, parts))
        return _described(stored)
    if request.method == "DELETE" and action == "abort":
        await in_thread(lambda: multipart.abort(bucket, key, upload_id))
        return JSONResponse({"ok": True})
    return JSONResponse({"error": "unknown multipart action", "code": 10021}, status_code=404)


routes = [
    Route("/internal/v1/r2/{bucket_id}/object", r2_object, methods=["GET", "PUT"]),
    Route("/internal/v1/r2/{bucket_id}/delete", r2_delete, methods=["POST"]),
    Route("/internal/v1/r2/{bucket_id}/list", r2_list, methods=["GET"]),
    Route(
        "/internal/v1/r2/{bucket_id}/multipart/{action}",
        r2_multipart,
        methods=["POST", "PUT", "DELETE"],
    ),
]
