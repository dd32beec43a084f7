"""Mayfly's OpenAPI document, built from the route table.

Each handler declares what it takes and answers with `@operation(...)` next to its code; the
document at /client/v4/openapi.json is generated from the routes and those declarations, never
written by hand (a test fails when a route has none). Shapes and operation ids follow Cloudflare's
published schema where the route is one of theirs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from starlette.routing import BaseRoute, Route

Schema = dict[str, Any]
Auth = Literal["token", "upload", "none"]
F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE = "__mayfly_operations__"
_PARAMETER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?}")
COMPONENTS: dict[str, Schema] = {}


def component(name: str, schema: Schema) -> Schema:
    """Register a named shape under components/schemas and return a reference to it."""
    COMPONENTS[name] = schema
    return ref(name)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: Mapping[str, Schema], *required: str, extra: bool = True) -> Schema:
    schema: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema, **limits: int) -> Schema:
    return {"type": "array", "items": items, **limits}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}
INTEGER: Schema = {"type": "integer"}
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
# Bytes as they are, for a body or an answer outside the envelope (a KV value, an R2 object).
OCTETS: dict[str, Schema] = {"application/octet-stream": {"type": "string", "format": "binary"}}
NULL_RESULT: Schema = {"type": "object", "nullable": True}
# Cloudflare's `identifier` (32 hex characters there; Mayfly's ids are as long or shorter).
IDENTIFIER: Schema = {"type": "string", "maxLength": 32}
# page/per_page pagination, answered with result_info.total_count (wrangler and the SDKs).
PAGE_QUERY: dict[str, Schema] = {
    "page": {"type": "integer", "minimum": 1, "default": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
}
RESULT_INFO = component(
    "result-info",
    obj(
        {
            "page": INTEGER,
            "per_page": INTEGER,
            "count": INTEGER,
            "total_count": INTEGER,
            "total_pages": INTEGER,
            "cursor": STRING,
        }
    ),
)
# Well-known path parameters, described once for every route that has them.
PATH_PARAMETERS: dict[str, Schema] = {
    "account_id": IDENTIFIER,
    "script": {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$"},
    "namespace_id": IDENTIFIER,
    "key": {"type": "string", "minLength": 1, "maxLength": 512},
}


@dataclass(frozen=True)
class Operation:
    """One method of one route: what it takes, and the `result` of its envelope."""

    summary: str
    # Cloudflare's operationId for the same call; otherwise one is derived from the path.
    operation_id: str = ""
    result: Schema = field(default_factory=lambda: dict(NULL_RESULT))
    result_info: bool = False
    query: Mapping[str, Schema] = field(default_factory=dict)
    path: Mapping[str, Schema] = field(default_factory=dict)
    # media type -> schema of the request body
    body: Mapping[str, Schema] | None = None
    body_required: bool = False
    # media type -> a request body that works (documentation, and the fuzzer's first case)
    examples: Mapping[str, Any] = field(default_factory=dict)
    auth: Auth = "token"
    status: int = 200
    # media type -> schema, for the few answers that are not in Cloudflare's envelope
    raw: Mapping[str, Schema] | None = None
    tag: str = ""


def operation(method: str, summary: str, *, at: str = "", **details: Any) -> Callable[[F], F]:
    """Declare the OpenAPI operation a handler serves for `method` (stack one per method).

    A handler routed at several paths that Cloudflare documents as different operations stacks
    one more per path, `at` naming the end of that path (e.g. `at="/content/v2"`).
    """
    declared = Operation(summary=summary, **details)
    key = f"{method.upper()} {at}" if at else method.upper()

    def attach(handler: F) -> F:
        table = {**operations_of(handler), key: declared}
        setattr(handler, _ATTRIBUTE, table)
        return handler

    return attach


def operations_of(handler: Callable[..., Any]) -> Mapping[str, Operation]:
    table: Mapping[str, Operation] = getattr(handler, _ATTRIBUTE, {})
    return table


def declared_for(handler: Callable[..., Any], method: str, path: str) -> Operation | None:
    """The operation `handler` declares for `method` on `path` (one declared `at` its end first)."""
    table = operations_of(handler)
    for key, declared in table.items():
        declared_method, _, at = key.partition(" ")
        if at and declared_method == method and path.endswith(at):
            return declared
    return table.get(method)


def _methods(route: Route) -> list[str]:
    return sorted((route.methods or set()) - {"HEAD"})


def undocumented(routes: Iterable[BaseRoute]) -> list[str]:
    """`METHOD /path` of every route that declares no operation."""
    return [
        f"{method} {route.path}"
        for route in routes
        if isinstance(route, Route)
        for method in _methods(route)
        if declared_for(route.endpoint, method, route.path) is None
    ]


def _envelope(result: Schema, with_info: bool) -> Schema:
    properties: Schema = {
        "success": {"type": "boolean", "enum": [True]},
        "errors": ref("messages"),
        "messages": ref("messages"),
        "result": result,
    }
    if with_info:
        properties["result_info"] = RESULT_INFO
    return obj(properties, "success", "errors", "messages", "result")


def _derived_id(method: str, path: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", _PARAMETER.sub(r"\1", path).lower()).strip("-")
    return f"mayfly-{method.lower()}-{words}"


def _render(op: Operation, method: str, path: str, used_ids: set[str]) -> Schema:
    operation_id = op.operation_id or _derived_id(method, path)
    if operation_id in used_ids:  # one handler serving two paths (e.g. services/ and scripts/)
        operation_id = _derived_id(method, path)
    used_ids.add(operation_id)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": op.path.get(name, PATH_PARAMETERS.get(name, STRING)),
        }
        for name in _PARAMETER.findall(path)
    ] + [{"name": name, "in": "query", "schema": schema} for name, schema in op.query.items()]
    if op.raw is not None:
        success = {"content": {media: {"schema": s} for media, s in op.raw.items()}}
    else:
        success = {
            "content": {"application/json": {"schema": _envelope(op.result, op.result_info)}}
        }
    rendered: Schema = {
        "operationId": operation_id,
        "summary": op.summary,
        "parameters": parameters,
        "responses": {
            str(op.status): {"description": op.summary, **success},
            "4XX": {"$ref": "#/components/responses/failure"},
        },
    }
    if op.tag:
        rendered["tags"] = [op.tag]
    if op.auth == "none":
        rendered["security"] = []
    elif op.auth == "upload":
        rendered["security"] = [{"assets_upload_token": []}]
    if op.body is not None:
        rendered["requestBody"] = {
            "required": op.body_required,
            "content": {
                media: {
                    "schema": s,
                    **({"example": op.examples[media]} if media in op.examples else {}),
                }
                for media, s in op.body.items()
            },
        }
    return rendered


_MESSAGES = array(
    obj({"code": {"type": "integer", "minimum": 1000}, "message": STRING}, "code", "message")
)


def build_document(routes: Iterable[BaseRoute], *, version: str) -> Schema:
    paths: dict[str, Schema] = {}
    used_ids: set[str] = set()
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _PARAMETER.sub(r"{\1}", route.path)
        for method in _methods(route):
            declared = declared_for(route.endpoint, method, path)
            if declared is not None:
                entry = paths.setdefault(path, {})
                entry[method.lower()] = _render(declared, method, path, used_ids)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Mayfly API",
            "version": version,
            "description": (
                "The Cloudflare-compatible control plane of a Mayfly server: answers in "
                "Cloudflare's envelope ({success, errors, messages, result})."
            ),
        },
        "servers": [{"url": "/client/v4"}],
        "security": [{"api_token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "api_token": {"type": "http", "scheme": "bearer"},
                "assets_upload_token": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The jwt of an assets upload session.",
                },
            },
            "schemas": {
                "messages": _MESSAGES,
                "failure": obj(
                    {
                        "success": {"type": "boolean", "enum": [False]},
                        "errors": {**_MESSAGES, "minItems": 1},
                        "messages": _MESSAGES,
                        "result": NULL_RESULT,
                    },
                    "success",
                    "errors",
                    "messages",
                ),
                **COMPONENTS,
            },
            "responses": {
                "failure": {
                    "description": "An error in Cloudflare's envelope.",
                    "content": {"application/json": {"schema": ref("failure")}},
                }
            },
        },
    }
