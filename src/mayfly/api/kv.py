"""K1–K7: Workers KV namespaces and values (spec §5.8). Keys come from the raw path."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import unquote

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import account_access, services
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    STRING,
    array,
    component,
    nullable,
    obj,
    operation,
)
from mayfly.errors import PayloadTooLarge, ValidationError
from mayfly.model import Account, Principal
from mayfly.services.core import strict_json
from mayfly.services.resources.kv import BulkItem, check_expiry_fields, check_key

TAG = "Workers KV"
NAMESPACE = component(
    "kv-namespace",
    obj({"id": STRING, "title": STRING, "supports_url_encoding": BOOLEAN}, "id", "title"),
)
TITLE = {"application/json": obj({"title": {"type": "string", "maxLength": 512}}, "title")}
# Seconds since the epoch, and seconds from now (at least 60), as Cloudflare's API takes them.
EXPIRY_QUERY = {"expiration": INTEGER, "expiration_ttl": INTEGER}
BULK_RESULT = obj({"successful_key_count": INTEGER, "unsuccessful_keys": array(STRING)})
KEY_NAMES = {"application/json": array({"type": "string", "maxLength": 512})}


def _actor(who: Principal, account: Account) -> str:
    return who.email or f"token:{who.token_id[:8]}"


def raw_key(request: Request) -> str:
    """The key exactly as sent: `%2F` is part of the key, never a path separator."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    marker = b"/values/" if b"/values/" in raw else b"/metadata/"
    encoded = raw.split(marker, 1)[1].decode("latin-1")
    return unquote(encoded)


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise ValidationError(f"{name} must be a whole number of seconds.")
    return int(value)


@operation(
    "POST",
    "Create a namespace",
    operation_id="workers-kv-namespace-create-a-namespace",
    tag=TAG,
    body=TITLE,
    body_required=True,
    examples={"application/json": {"title": "my-namespace"}},
    result=NAMESPACE,
)
async def create_namespace(request: Request) -> Response:
    who, account = await account_access(request)
    body = await json_body(request)
    created = await asyncio.to_thread(
        services(request).kv.create_namespace, account, body.get("title"), _actor(who, account)
    )
    return ok(created)


@operation(
    "GET",
    "The account's namespaces",
    operation_id="workers-kv-namespace-list-namespaces",
    tag=TAG,
    query={
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 1000},
        "order": {"type": "string", "enum": ["id", "title"]},
        "direction": {"type": "string", "enum": ["asc", "desc"]},
    },
    result=array(NAMESPACE),
    result_info=True,
)
async def list_namespaces(request: Request) -> Response:
    """Page-until-empty (the SDK) and page/per_page with total_count (wrangler) both work."""
    _, account = await account_access(request)
    order = request.query_params.get("order", "title")
    direction = request.query_params.get("direction", "asc")
    items = await asyncio.to_thread(services(request).kv.list_namespaces, account, order, direction)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
        per_page = min(1000, max(1, int(request.query_params.get("per_page", "20"))))
    except ValueError as exc:
        raise ValidationError("page and per_page must be whole numbers.") from exc
    chunk = items[(page - 1) * per_page : page * per_page]
    return ok(
        chunk,
        result_info={
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": (len(items) + per_page - 1) // per_page,
        },
    )


@operation(
    "GET",
    "One namespace",
    operation_id="workers-kv-namespace-get-a-namespace",
    tag=TAG,
    result=NAMESPACE,
)
@operation(
    "PUT",
    "Rename a namespace",
    operation_id="workers-kv-namespace-rename-a-namespace",
    tag=TAG,
    body=TITLE,
    body_required=True,
    examples={"application/json": {"title": "my-namespace"}},
    result=NAMESPACE,
)
@operation(
    "DELETE",
    "Delete a namespace and its keys",
    operation_id="workers-kv-namespace-remove-a-namespace",
    tag=TAG,
)
async def namespace(request: Request) -> Response:
    who, account = await account_access(request)
    kv = services(request).kv
    ns = request.path_params["namespace_id"]
    if request.method == "GET":
        return ok(await asyncio.to_thread(kv.get_namespace, account, ns))
    if request.method == "PUT":
        body = await json_body(request)
        return ok(await asyncio.to_thread(kv.rename_namespace, account, ns, body.get("title")))
    await asyncio.to_thread(kv.delete_namespace, account, ns, _actor(who, account))
    return ok(None)


async def _value_and_metadata(request: Request, max_bytes: int) -> tuple[bytes, Any]:
    """The value (from the raw body or a multipart `value` part) and its metadata, if any.

    The body limits middleware has already capped the body at about `max_bytes`; the value
    itself is checked against it here, as it streams, before anything else holds it.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=2, max_fields=2, max_part_size=max_bytes)
        except (MultiPartException, HTTPException) as exc:
            detail = getattr(exc, "message", None) or getattr(exc, "detail", str(exc))
            raise ValidationError(f"The multipart body could not be parsed: {detail}") from exc
        try:
            value_part = form.get("value")
            if value_part is None:
                raise ValidationError("A multipart KV write needs a `value` part.")
            value = (
                await value_part.read()
                if isinstance(value_part, UploadFile)
                else value_part.encode()
            )
            raw_meta = form.get("metadata")
            if isinstance(raw_meta, UploadFile):
                raw_meta = (await raw_meta.read()).decode()
        finally:
            await form.close()
        if len(value) > max_bytes:
            raise PayloadTooLarge(f"KV values are at most {max_bytes} bytes.")
        metadata = None
        if raw_meta not in (None, ""):
            metadata = strict_json.loads(str(raw_meta), "The `metadata` part")
        return value, metadata
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"KV values are at most {max_bytes} bytes.")
    return bytes(body), None


@operation(
    "GET",
    "A key's value, as stored (not in the envelope)",
    operation_id="workers-kv-namespace-read-key-value-pair",
    tag=TAG,
    raw={"application/octet-stream": {"type": "string", "format": "binary"}},
)
@operation(
    "PUT",
    "Write a value: the raw body, or multipart with `value` and JSON `metadata`",
    operation_id="workers-kv-namespace-write-key-value-pair-with-metadata",
    tag=TAG,
    query=EXPIRY_QUERY,
    body={
        "application/octet-stream": {"type": "string", "format": "binary"},
        "multipart/form-data": obj({"value": STRING, "metadata": STRING}, "value"),
    },
    examples={"multipart/form-data": {"value": "hello", "metadata": '{"lang": "en"}'}},
)
@operation(
    "DELETE",
    "Delete a key",
    operation_id="workers-kv-namespace-delete-key-value-pair",
    tag=TAG,
)
async def value(request: Request) -> Response:
    _, account = await account_access(request)
    kv = services(request).kv
    ns = request.path_params["namespace_id"]
    key = raw_key(request)
    if request.method == "GET":
        entry = await asyncio.to_thread(kv.get, account, ns, key)
        headers = {}
        if entry.expiration is not None:
            headers["expiration"] = str(entry.expiration)
        return Response(entry.value, media_type="application/octet-stream", headers=headers)
    if request.method == "PUT":
        check_key(key)  # before the body is read
        expiration = _int_param(request, "expiration")
        expiration_ttl = _int_param(request, "expiration_ttl")
        data, metadata = await _value_and_metadata(
            request, services(request).ctx.settings.max_kv_value_bytes
        )
        await asyncio.to_thread(
            lambda: kv.put(
                account,
                ns,
                key,
                data,
                metadata=metadata,
                expiration=expiration,
                expiration_ttl=expiration_ttl,
            )
        )
        return ok(None)
    await asyncio.to_thread(kv.delete_key, account, ns, key)
    return ok(None)


@operation(
    "GET",
    "A key's metadata",
    operation_id="workers-kv-namespace-read-the-metadata-for-a-key",
    tag=TAG,
    result=nullable(ANY_OBJECT),
)
async def metadata(request: Request) -> Response:
    _, account = await account_access(request)
    entry = await asyncio.to_thread(
        services(request).kv.get, account, request.path_params["namespace_id"], raw_key(request)
    )
    return ok(entry.metadata)


@operation(
    "GET",
    "A namespace's keys in byte order, a cursor at a time",
    operation_id="workers-kv-namespace-list-a-namespace-s-keys",
    tag=TAG,
    query={
        "limit": {"type": "integer", "minimum": 10, "maximum": 1000, "default": 1000},
        "prefix": STRING,
        "cursor": STRING,
    },
    result=array(
        obj(
            {
                "name": STRING,
                "expiration": INTEGER,
                "metadata": ANY_OBJECT,
            },
            "name",
        )
    ),
    result_info=True,
)
async def keys(request: Request) -> Response:
    _, account = await account_access(request)
    try:
        limit = int(request.query_params.get("limit", "1000"))
    except ValueError as exc:
        raise ValidationError("limit must be a whole number.") from exc
    items, cursor = await asyncio.to_thread(
        services(request).kv.list_keys,
        account,
        request.path_params["namespace_id"],
        request.query_params.get("prefix", ""),
        request.query_params.get("cursor", ""),
        limit,
    )
    return ok(items, result_info={"count": len(items), "cursor": cursor})


def _bulk_items(body: Any, limit: int) -> list[BulkItem]:
    """Check every field of every item before anything is written (all or nothing)."""
    if not isinstance(body, list):
        raise ValidationError("The bulk body must be a JSON array of {key, value} objects.")
    if len(body) > limit:
        raise ValidationError(f"A bulk write takes at most {limit} keys; got {len(body)}.")
    items = []
    for index, item in enumerate(body):
        where = f"Bulk item {index}"
        if not isinstance(item, dict):
            raise ValidationError(f"{where} must be an object with a `key` and a `value`.")
        key, raw, encoded = item.get("key"), item.get("value", ""), item.get("base64", False)
        if not isinstance(key, str):
            raise ValidationError(f"{where}: `key` must be a string.")
        check_key(key)
        if not isinstance(raw, str):
            raise ValidationError(f"{where}: `value` must be a string.")
        if not isinstance(encoded, bool):
            raise ValidationError(f"{where}: `base64` must be true or false.")
        if encoded:
            try:
                data = base64.b64decode(raw, validate=True)
            except ValueError as exc:
                raise ValidationError(f"{where}: `value` is not valid base64.") from exc
        else:
            data = raw.encode()
        expiration, ttl = item.get("expiration"), item.get("expiration_ttl")
        try:
            check_expiry_fields(expiration, ttl)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc.message}") from exc
        items.append(BulkItem(key, data, item.get("metadata"), expiration, ttl))
    return items


@operation(
    "PUT",
    "Write many keys at once, all or nothing",
    operation_id="workers-kv-namespace-write-multiple-key-value-pairs",
    tag=TAG,
    body={
        "application/json": array(
            obj(
                {
                    "key": {"type": "string", "maxLength": 512},
                    "value": STRING,
                    "base64": BOOLEAN,
                    "expiration": INTEGER,
                    "expiration_ttl": INTEGER,
                    "metadata": ANY_OBJECT,
                },
                "key",
                "value",
            )
        )
    },
    body_required=True,
    examples={
        "application/json": [
            {"key": "greeting", "value": "hello", "expiration_ttl": 3600},
            {"key": "blob", "value": "aGVsbG8=", "base64": True, "metadata": {"type": "text"}},
        ]
    },
    result=BULK_RESULT,
)
async def bulk_write(request: Request) -> Response:
    """All or nothing: every item is checked, then written in one transaction."""
    _, account = await account_access(request)
    ns = request.path_params["namespace_id"]
    svc = services(request)
    body = strict_json.loads(await request.body(), "The bulk body")
    items = _bulk_items(body, svc.ctx.settings.max_kv_bulk_items)
    await asyncio.to_thread(svc.kv.put_many, account, ns, items)
    return ok({"successful_key_count": len(items), "unsuccessful_keys": []})


@operation(
    "POST",
    "Delete many keys at once",
    operation_id="workers-kv-namespace-delete-multiple-key-value-pairs",
    tag=TAG,
    body=KEY_NAMES,
    body_required=True,
    result=BULK_RESULT,
)
@operation(
    "DELETE",
    "Delete many keys at once (the older form)",
    operation_id="workers-kv-namespace-delete-multiple-key-value-pairs-deprecated",
    tag=TAG,
    body=KEY_NAMES,
    body_required=True,
    result=BULK_RESULT,
)
async def bulk_delete(request: Request) -> Response:
    _, account = await account_access(request)
    ns = request.path_params["namespace_id"]
    svc = services(request)
    names = strict_json.loads(await request.body(), "The bulk delete body")
    if not isinstance(names, list) or not all(isinstance(k, str) for k in names):
        raise ValidationError("The bulk delete body must be a JSON array of keys.")
    limit = svc.ctx.settings.max_kv_bulk_items
    if len(names) > limit:
        raise ValidationError(f"A bulk delete takes at most {limit} keys; got {len(names)}.")
    for key in names:
        check_key(key)
    for key in names:
        await asyncio.to_thread(svc.kv.delete_key, account, ns, key)
    return ok({"successful_key_count": len(names), "unsuccessful_keys": []})


BULK_GET_MAX = 100  # Cloudflare's limit for one bulk get


@operation(
    "POST",
    "Read up to 100 keys at once (absent keys are null)",
    operation_id="workers-kv-namespace-get-multiple-key-value-pairs",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "keys": array({"type": "string", "maxLength": 512}, maxItems=BULK_GET_MAX),
                "type": {"type": "string", "enum": ["text", "json"]},
                "withMetadata": BOOLEAN,
            },
            "keys",
        )
    },
    body_required=True,
    result=obj({"values": ANY_OBJECT}, "values"),
)
async def bulk_get(request: Request) -> Response:
    """`{keys, type: text|json, withMetadata}` → `{values: {key: value | {value, metadata,
    expiration}}}`, null for an absent key (what `wrangler kv bulk get` and the SDKs read)."""
    _, account = await account_access(request)
    body = strict_json.loads(await request.body(), "The bulk get body")
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ValidationError('Send {"keys": ["<key>", ...]} with at least one key.')
    if len(keys) > BULK_GET_MAX:
        raise ValidationError(f"A bulk get takes at most {BULK_GET_MAX} keys; got {len(keys)}.")
    for key in keys:
        check_key(key)
    kind = body.get("type", "text")
    if kind not in ("text", "json"):
        raise ValidationError('`type` is "text" or "json".')
    with_metadata = body.get("withMetadata", False)
    if not isinstance(with_metadata, bool):
        raise ValidationError("`withMetadata` must be true or false.")
    entries = await asyncio.to_thread(
        services(request).kv.get_many, account, request.path_params["namespace_id"], keys
    )
    values: dict[str, Any] = {}
    for key in keys:
        entry = entries.get(key)
        value = None if entry is None else _bulk_value(key, entry.value, kind)
        values[key] = (
            {
                "value": value,
                "metadata": entry.metadata if entry else None,
                "expiration": entry.expiration if entry else None,
            }
            if with_metadata
            else value
        )
    return ok({"values": values})


def _bulk_value(key: str, data: bytes, kind: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"KV key {key!r} is not UTF-8 text; read it on its own.") from exc
    if kind == "text":
        return text
    try:
        return strict_json.loads(data, f"KV key {key!r}")
    except ValidationError as exc:
        raise ValidationError(f"KV key {key!r} is not JSON; ask for type text.") from exc


N = "/accounts/{account_id}/storage/kv/namespaces"
V = N + "/{namespace_id}"
routes = [
    Route(N, create_namespace, methods=["POST"]),
    Route(N, list_namespaces, methods=["GET"]),
    Route(V, namespace, methods=["GET", "PUT", "DELETE"]),
    Route(V + "/values/{key:path}", value, methods=["GET", "PUT", "DELETE"]),
    Route(V + "/metadata/{key:path}", metadata, methods=["GET"]),
    Route(V + "/keys", keys, methods=["GET"]),
    Route(V + "/bulk", bulk_write, methods=["PUT"]),
    Route(V + "/bulk", bulk_delete, methods=["DELETE"]),
    Route(V + "/bulk/delete", bulk_delete, methods=["POST"]),
    Route(V + "/bulk/get", bulk_get, methods=["POST"]),
]
