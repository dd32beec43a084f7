"""KV values one key at a time (with metadata and expiry), and a namespace's keys by cursor."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import account_access, in_account, in_thread, services
from mayfly.api.bodies import read_capped, read_form
from mayfly.api.envelope import ok
from mayfly.api.kv.common import (
    EXPIRY_QUERY,
    TAG,
    int_param,
    raw_key,
)
from mayfly.api.openapi import (
    ANY_OBJECT,
    INTEGER,
    OCTETS,
    STRING,
    array,
    nullable,
    obj,
    operation,
)
from mayfly.errors import PayloadTooLarge, ValidationError
from mayfly.model import Account, Principal
from mayfly.services.core import strict_json
from mayfly.services.resources.kv import check_key


async def _value_and_metadata(request: Request, max_bytes: int) -> tuple[bytes, Any]:
    """The value (from the raw body or a multipart `value` part) and its metadata, if any.

    The body limits middleware has already capped the body at about `max_bytes`; the value
    itself is checked against it here, as it streams, before anything else holds it.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, max_files=2, max_fields=2, max_part_size=max_bytes)
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
    return await read_capped(request, max_bytes, f"KV values are at most {max_bytes} bytes."), None


@operation(
    "GET",
    "A key's value, as stored (not in the envelope)",
    operation_id="workers-kv-namespace-read-key-value-pair",
    tag=TAG,
    raw=OCTETS,
)
@operation(
    "PUT",
    "Write a value: the raw body, or multipart with `value` and JSON `metadata`",
    operation_id="workers-kv-namespace-write-key-value-pair-with-metadata",
    tag=TAG,
    query=EXPIRY_QUERY,
    body={
        **OCTETS,
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
    kv = services(request).kv
    ns = request.path_params["namespace_id"]
    key = raw_key(request)
    if request.method == "GET":
        entry = await in_account(request, lambda _, account: kv.get(account, ns, key))
        headers = {}
        if entry.expiration is not None:
            headers["expiration"] = str(entry.expiration)
        return Response(entry.value, media_type="application/octet-stream", headers=headers)
    if request.method == "PUT":
        _, account = await account_access(request)
        check_key(key)  # before the body is read
        expiration = int_param(request, "expiration")
        expiration_ttl = int_param(request, "expiration_ttl")
        data, metadata = await _value_and_metadata(
            request, services(request).ctx.settings.max_kv_value_bytes
        )
        await in_thread(
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
    await in_account(request, lambda _, account: kv.delete_key(account, ns, key))
    return ok(None)


@operation(
    "GET",
    "A key's metadata",
    operation_id="workers-kv-namespace-read-the-metadata-for-a-key",
    tag=TAG,
    result=nullable(ANY_OBJECT),
)
async def metadata(request: Request) -> Response:
    kv = services(request).kv
    ns, key = request.path_params["namespace_id"], raw_key(request)
    entry = await in_account(request, lambda _, account: kv.get(account, ns, key))
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
    kv = services(request).kv
    ns, params = request.path_params["namespace_id"], request.query_params

    def page(_: Principal, account: Account) -> tuple[list[dict[str, Any]], str]:
        try:  # checked after the caller (in its thread), as before
            limit = int(params.get("limit", "1000"))
        except ValueError as exc:
            raise ValidationError("limit must be a whole number.") from exc
        return kv.list_keys(account, ns, params.get("prefix", ""), params.get("cursor", ""), limit)

    items, cursor = await in_account(request, page)
    return ok(items, result_info={"count": len(items), "cursor": cursor})
