"""KV in bulk: write, delete and get many keys in one request (one transaction each)."""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import account_access, in_thread, services
from mayfly.api.envelope import ok
from mayfly.api.kv.common import (
    BULK_RESULT,
    KEY_NAMES,
    TAG,
)
from mayfly.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    STRING,
    array,
    obj,
    operation,
)
from mayfly.errors import ValidationError
from mayfly.model import Account
from mayfly.services.core import strict_json
from mayfly.services.resources.kv import BulkItem, check_expiry_fields, check_key


async def _namespace_access(request: Request) -> tuple[Account, str]:
    """The caller's account (checked before the body is read) and the namespace in the path."""
    _, account = await account_access(request)
    return account, request.path_params["namespace_id"]


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
    account, ns = await _namespace_access(request)
    body = strict_json.loads(await request.body(), "The bulk body")
    svc = services(request)
    items = _bulk_items(body, svc.ctx.settings.max_kv_bulk_items)
    await in_thread(lambda: svc.kv.put_many(account, ns, items))
    return ok({"successful_key_count": len(items), "unsuccessful_keys": []})


@operation(
    "POST",
    "Delete many keys at once, all or nothing",
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
    account, ns = await _namespace_access(request)
    names = strict_json.loads(await request.body(), "The bulk delete body")
    svc = services(request)
    if not isinstance(names, list) or not all(isinstance(k, str) for k in names):
        raise ValidationError("The bulk delete body must be a JSON array of keys.")
    limit = svc.ctx.settings.max_kv_bulk_items
    if len(names) > limit:
        raise ValidationError(f"A bulk delete takes at most {limit} keys; got {len(names)}.")
    for key in names:
        check_key(key)
    await in_thread(lambda: svc.kv.delete_many(account, ns, names))  # all or nothing
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
    account, ns = await _namespace_access(request)
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
    kv = services(request).kv
    entries = await in_thread(lambda: kv.get_many(account, ns, keys))
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
