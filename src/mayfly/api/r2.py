"""R2 buckets and objects, as wrangler's `r2 bucket …` and `r2 object … --remote` call them.

Objects travel raw: a PUT's body is the object (HTTP metadata from its headers, as wrangler sends
them), a GET answers the bytes with the object's headers. Keys come from the raw path (`/` is part
of a key). The body limits middleware caps an object's body at max_r2_object_bytes.
"""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import account_access, actor, in_account, in_thread, services
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import OCTETS, STRING, array, component, obj, operation
from mayfly.errors import ValidationError
from mayfly.model import Account, Principal
from mayfly.services.resources.r2 import Read
from mayfly.services.resources.r2_meta import HEADER_FIELDS, check_key, parse_time, range_header
from mayfly.services.resources.r2_uploads import receive

TAG = "R2"
BUCKET = component(
    "r2-bucket",
    obj(
        {"name": STRING, "creation_date": STRING, "location": STRING, "storage_class": STRING},
        "name",
        "creation_date",
    ),
)
BUCKET_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"}
OBJECT = obj(
    {"key": STRING, "etag": STRING, "size": {"type": "integer"}, "uploaded": STRING}, "key"
)


@operation(
    "POST",
    "Create a bucket",
    operation_id="r2-create-bucket",
    tag=TAG,
    body={
        "application/json": obj(
            {"name": BUCKET_NAME, "locationHint": STRING, "storageClass": STRING}, "name"
        )
    },
    body_required=True,
    examples={"application/json": {"name": "my-bucket"}},
    result=BUCKET,
)
@operation(
    "GET",
    "The account's buckets",
    operation_id="r2-list-buckets",
    tag=TAG,
    query={"name_contains": STRING, "per_page": {"type": "integer", "minimum": 1}},
    result=obj({"buckets": array(BUCKET)}, "buckets"),
)
async def buckets(request: Request) -> Response:
    r2 = services(request).r2
    if request.method == "POST":
        who, account = await account_access(request)
        body = await json_body(request)
        name, storage_class = body.get("name"), body.get("storageClass")
        return ok(
            await in_thread(lambda: r2.create_bucket(account, name, storage_class, actor(who)))
        )
    contains = request.query_params.get("name_contains", "")
    found = await in_account(request, lambda _, account: r2.list_buckets(account, contains))
    return ok({"buckets": found}, result_info={"cursor": "", "per_page": len(found) or 20})


@operation("GET", "One bucket", operation_id="r2-get-bucket", tag=TAG, result=BUCKET)
@operation(
    "DELETE",
    "Delete an empty bucket (10008 while it holds objects)",
    operation_id="r2-delete-bucket",
    tag=TAG,
    result=obj({}),
)
async def bucket(request: Request) -> Response:
    r2 = services(request).r2
    name = request.path_params["bucket_name"]
    if request.method == "GET":
        return ok(await in_account(request, lambda _, account: r2.get_bucket(account, name)))
    await in_account(request, lambda who, account: r2.delete_bucket(account, name, actor(who)))
    return ok({})


def object_key(request: Request) -> str:
    """The key exactly as sent: everything after `/objects/`, percent-decoded once."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    return unquote(raw.split(b"/objects/", 1)[1].decode("latin-1"))


def object_headers(described: dict[str, Any]) -> dict[str, str]:
    """An object's description as HTTP headers (R2's writeHttpMetadata, plus etag and date)."""
    headers = {
        "etag": described["httpEtag"],
        "last-modified": format_datetime(parse_time(described["uploaded"], "uploaded"), True),
    }
    meta = described.get("httpMetadata") or {}
    for header, field in HEADER_FIELDS.items():
        if field in meta:
            value = meta[field]
            if field == "cacheExpiry":
                value = format_datetime(parse_time(value, "cacheExpiry"), True)
            headers[header] = value
    for name, value in (described.get("customMetadata") or {}).items():
        if name.isascii() and value.isascii():
            headers[f"x-amz-meta-{name}"] = value
    return headers


@operation(
    "GET",
    "An object's bytes (not in the envelope), with its HTTP metadata as headers",
    operation_id="r2-get-object",
    tag=TAG,
    raw=OCTETS,
)
@operation(
    "PUT",
    "Write an object: the raw body; Content-Type and the other HTTP metadata from the headers",
    operation_id="r2-put-object",
    tag=TAG,
    body=OCTETS,
    result=OBJECT,
)
@operation("DELETE", "Delete an object", operation_id="r2-delete-object", tag=TAG, result=obj({}))
async def object_(request: Request) -> Response:
    svc = services(request)
    key, name = object_key(request), request.path_params["bucket_name"]

    def bucket_id(account: Account) -> str:
        check_key(key)
        return svc.r2.bucket_id(account, name)

    if request.method == "GET":
        wanted = request.headers.get("range")

        def get(_: Principal, account: Account) -> Read:
            found_in = bucket_id(account)
            return svc.r2.get_object(found_in, key, range_spec=range_header(wanted))

        read = await in_account(request, get)
        headers = object_headers(read.object)
        status = 200
        if "range" in read.object:
            span = read.object["range"]
            end = span["offset"] + span["length"] - 1
            headers["content-range"] = f"bytes {span['offset']}-{end}/{read.object['size']}"
            status = 206
        return Response(read.body or b"", status_code=status, headers=headers)
    if request.method == "PUT":
        into = await in_account(request, lambda _, account: bucket_id(account))
        http = {
            field: request.headers[header]
            for header, field in HEADER_FIELDS.items()
            if request.headers.get(header)
        }
        if "cacheExpiry" in http:
            http["cacheExpiry"] = _http_date(http["cacheExpiry"])
        length = request.headers.get("content-length")
        chunks = request.stream()
        async with receive(svc.ctx, svc.r2.uploads, chunks, length, into, key=key) as data:
            stored = await in_thread(lambda: svc.r2.put_object(into, key, data, http=http))
        return ok(stored)
    await in_account(request, lambda _, account: svc.r2.delete_objects(bucket_id(account), [key]))
    return ok({})


def _http_date(value: str) -> str:
    """An Expires header (an HTTP date, or ISO as the binding sends it) as ISO."""
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError):
        pass
    try:
        return parse_time(value, "Expires").isoformat()
    except ValidationError as exc:
        raise ValidationError("The Expires header must be an HTTP date.") from exc


A = "/accounts/{account_id}/r2/buckets"
routes = [
    Route(A, buckets, methods=["GET", "POST"]),
    Route(A + "/{bucket_name}", bucket, methods=["GET", "DELETE"]),
    Route(A + "/{bucket_name}/objects/{key:path}", object_, methods=["GET", "PUT", "DELETE"]),
]
