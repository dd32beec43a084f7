"""A Worker's secrets: list, set, delete, in bulk; each change is a new version."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import account_access, in_account, services
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import (
    BOOLEAN,
    STRING,
    array,
    nullable,
    obj,
    operation,
)
from mayfly.api.workers.common import (
    SECRET,
    SECRET_NAME,
    TAG,
    VERSION,
    script_name,
    worker_access,
)
from mayfly.errors import SecretNotFound, ValidationError


@operation("GET", "A Worker's secrets (names only)", tag=TAG, result=array(SECRET))
async def list_secrets(request: Request) -> Response:
    scripts, name = services(request).scripts, script_name(request)
    bindings = await in_account(request, lambda _, account: scripts.current_bindings(account, name))
    return ok(
        [{"name": b["name"], "type": b["type"]} for b in bindings if b["type"] == "secret_text"]
    )


@operation(
    "PUT",
    "Set a secret (a new version, deployed)",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "name": SECRET_NAME,
                "text": STRING,
                "type": {"type": "string", "enum": ["secret_text"]},
            },
            "name",
            "text",
        )
    },
    examples={"application/json": {"name": "API_KEY", "text": "s3cret", "type": "secret_text"}},
    body_required=True,
    result=SECRET,
)
async def put_secret(request: Request) -> Response:
    """W14: a secret change makes a new version and deploys it (10007 for a missing Worker)."""
    who, account = await worker_access(request)
    body = await json_body(request)
    return ok(await services(request).scripts.put_secret(who, account, script_name(request), body))


@operation(
    "GET",
    "One secret's name and type",
    tag=TAG,
    path={"secret_name": SECRET_NAME},
    result=SECRET,
)
@operation(
    "DELETE",
    "Delete a secret (a new version, deployed)",
    tag=TAG,
    path={"secret_name": SECRET_NAME},
    query={"url_encoded": BOOLEAN},
)
async def secret(request: Request) -> Response:
    """W15 (DELETE, `?url_encoded=true`) and GET of one secret's name and type."""
    scripts, name = services(request).scripts, script_name(request)
    secret_name = request.path_params["secret_name"]
    if request.method == "DELETE":
        who, account = await account_access(request)
        await scripts.delete_secret(who, account, name, secret_name)
        return ok(None)
    bindings = await in_account(request, lambda _, account: scripts.current_bindings(account, name))
    for binding in bindings:
        if binding["name"] == secret_name and binding["type"] == "secret_text":
            return ok({"name": secret_name, "type": "secret_text"})
    raise SecretNotFound(f"Worker {script_name(request)!r} has no secret named {secret_name!r}.")


SECRET_CHANGE = nullable(obj({"name": STRING, "text": STRING, "type": STRING}, "text"))


@operation(
    "PATCH",
    "Set and remove several secrets in one new version, deployed (`wrangler secret bulk`)",
    tag=TAG,
    body={
        "application/merge-patch+json": obj(
            {"secrets": {"type": "object", "additionalProperties": SECRET_CHANGE}}, "secrets"
        )
    },
    body_required=True,
    result={"type": "object", "additionalProperties": SECRET},
)
async def secrets_bulk(request: Request) -> Response:
    who, account = await worker_access(request)
    body = await json_body(request)
    version = await services(request).scripts.patch_secrets(
        who, account, script_name(request), body.get("secrets"), deploy=True
    )
    # Cloudflare's shape: the Worker's secrets after the change, by name.
    return ok(
        {
            b["name"]: {"name": b["name"], "type": b["type"]}
            for b in version["resources"]["bindings"]
            if b["type"] == "secret_text"
        }
    )


@operation(
    "PATCH",
    "A new version from the newest one with secrets set or removed, not deployed "
    "(`wrangler versions secret put|bulk|delete`)",
    tag=TAG,
    body={
        "application/merge-patch+json": obj(
            {
                "env": {"type": "object", "additionalProperties": SECRET_CHANGE},
                "annotations": obj({"workers/message": STRING, "workers/tag": STRING}),
            },
            "env",
        )
    },
    body_required=True,
    result=VERSION,
)
async def patch_latest_version(request: Request) -> Response:
    who, account = await worker_access(request)
    body = await json_body(request)
    marks = body.get("annotations") or {}
    if not isinstance(marks, dict):
        raise ValidationError("`annotations` must be an object.")
    annotations = {k: v for k, v in marks.items() if isinstance(v, str)}
    version = await services(request).scripts.patch_secrets(
        who, account, script_name(request), body.get("env"), deploy=False, annotations=annotations
    )
    return ok(version)
