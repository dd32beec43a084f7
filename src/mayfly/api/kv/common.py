"""What the KV routes share: their schemas, the key exactly as sent, whole-number parameters."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request

from mayfly.api.openapi import (
    BOOLEAN,
    INTEGER,
    STRING,
    array,
    component,
    obj,
)
from mayfly.errors import ValidationError

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


def raw_key(request: Request) -> str:
    """The key exactly as sent: `%2F` is part of the key, never a path separator."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    marker = b"/values/" if b"/values/" in raw else b"/metadata/"
    encoded = raw.split(marker, 1)[1].decode("latin-1")
    return unquote(encoded)


def int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise ValidationError(f"{name} must be a whole number of seconds.")
    return int(value)
