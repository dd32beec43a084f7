"""A Worker's settings (script-level ones change here) and the account's fixed ones."""

from __future__ import annotations

import itertools
import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import account_access, in_thread, services
from mayfly.api.bodies import read_form
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    STRING,
    array,
    obj,
    operation,
)
from mayfly.api.workers.common import (
    SETTINGS,
    TAG,
    in_worker,
    script_name,
    worker_access,
)
from mayfly.errors import ValidationError
from mayfly.services.core import strict_json


@operation(
    "GET",
    "A Worker's settings (bindings, compatibility, observability)",
    operation_id="worker-script-get-settings",
    tag=TAG,
    result=SETTINGS,
)
async def get_settings(request: Request) -> Response:
    scripts, name = services(request).scripts, script_name(request)
    return ok(await in_worker(request, lambda _, account: scripts.settings(account, name)))


@operation(
    "PATCH",
    "Change a Worker's script settings",
    operation_id="worker-script-settings-patch-settings",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "logpush": BOOLEAN,
                "observability": ANY_OBJECT,
                "tags": array(STRING),
                "tail_consumers": array(obj({"service": STRING}, "service")),
            },
            extra=False,
        )
    },
    body_required=True,
    result=SETTINGS,
)
async def patch_script_settings(request: Request) -> Response:
    _, account = await worker_access(request)
    body = await json_body(request)
    scripts, name = services(request).scripts, script_name(request)
    return ok(await in_thread(lambda: scripts.patch_settings(account, name, body)))


@operation(
    "PATCH",
    "Change a Worker's settings (a multipart `settings` part, or JSON)",
    operation_id="worker-script-patch-settings",
    tag=TAG,
    body={
        "multipart/form-data": obj({"settings": SETTINGS}, "settings"),
        "application/json": SETTINGS,
    },
    body_required=True,
    result=SETTINGS,
)
async def patch_settings(request: Request) -> Response:
    """Only the script-level settings can change here (logpush, observability, tags,
    tail_consumers); bindings and compatibility change with a new version (10021 names them)."""
    _, account = await worker_access(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = await _settings_part(request)
    else:
        body = await json_body(request)
    scripts, name = services(request).scripts, script_name(request)

    def patch() -> dict[str, Any]:
        current = scripts.settings(account, name)
        # Clients send back what they read: unchanged version-level fields are not a change.
        changes = {k: v for k, v in body.items() if current.get(k) != v or k in SCRIPT_LEVEL}
        return scripts.patch_settings(account, name, changes)

    return ok(await in_thread(patch))


SCRIPT_LEVEL = {"logpush", "observability", "tags", "tail_consumers"}


async def _settings_part(request: Request) -> dict[str, Any]:
    """A `settings` JSON part (wrangler, the Python SDK), or the npm SDK's bracketed fields
    (`settings[logpush]`, `settings[tags][]`, `settings[observability][enabled]`)."""
    limit = services(request).ctx.settings.max_upload_bytes
    form = await read_form(request, max_files=4, max_fields=64, max_part_size=limit)
    try:
        if len(form.getlist("settings")) > 1:
            raise ValidationError(
                "The body has more than one `settings` part (a duplicate part); send exactly one."
            )
        part = form.get("settings")
        raw = await part.read() if isinstance(part, UploadFile) else part
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    finally:
        await form.close()
    if raw is None:
        if any(key.startswith("settings[") for key, _ in fields):
            return _bracketed(fields)
        raise ValidationError("Send the settings as a multipart part named `settings`.")
    settings = strict_json.loads(raw, "The settings part")
    if not isinstance(settings, dict):
        raise ValidationError("The settings part must be a JSON object.")
    return settings


_BRACKETS = re.compile(r"settings((?:\[[A-Za-z0-9_]*\])+)")
_SCALARS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _bracketed(fields: list[tuple[str, str]]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for key, value in fields:
        match = _BRACKETS.fullmatch(key)
        if match is None:
            raise ValidationError(f"Unexpected settings field {key!r}.")
        path = match.group(1)[1:-1].split("][")
        node = settings
        for name, following in itertools.pairwise(path):
            if not name or not isinstance(node, dict):
                raise ValidationError(f"Unexpected settings field {key!r}.")
            node = node.setdefault(name, [] if following == "" else {})
        scalar = _SCALARS.get(value, value)
        if path[-1] == "" and isinstance(node, list):
            node.append(scalar)
        elif path[-1] and isinstance(node, dict):
            if path[-1] in node:
                raise ValidationError(f"Settings field {key!r} is sent twice (a duplicate part).")
            node[path[-1]] = scalar
        else:
            raise ValidationError(f"Unexpected settings field {key!r}.")
    return settings


ACCOUNT_SETTINGS = obj({"default_usage_model": STRING, "green_compute": BOOLEAN})
FIXED_ACCOUNT_SETTINGS = {"default_usage_model": "standard", "green_compute": False}


@operation(
    "GET",
    "Account-level Workers settings (fixed: the standard usage model)",
    operation_id="worker-account-settings-fetch-worker-account-settings",
    tag=TAG,
    result=ACCOUNT_SETTINGS,
)
@operation(
    "PUT",
    "Account-level Workers settings: only the values Mayfly has are accepted (10021 otherwise)",
    operation_id="worker-account-settings-create-worker-account-settings",
    tag=TAG,
    body={"application/json": ACCOUNT_SETTINGS},
    body_required=True,
    result=ACCOUNT_SETTINGS,
)
@operation(
    "PATCH",
    "Account-level Workers settings, as PUT",
    tag=TAG,
    body={"application/json": ACCOUNT_SETTINGS},
    body_required=True,
    result=ACCOUNT_SETTINGS,
)
async def account_settings(request: Request) -> Response:
    await account_access(request)
    if request.method in ("PUT", "PATCH"):
        body = await json_body(request)
        for key, value in body.items():
            if key not in FIXED_ACCOUNT_SETTINGS:
                raise ValidationError(f"Unknown account setting {key!r}.")
            if value != FIXED_ACCOUNT_SETTINGS[key]:
                raise ValidationError(
                    f"Mayfly has one value for {key}: {FIXED_ACCOUNT_SETTINGS[key]!r}."
                )
    return ok(FIXED_ACCOUNT_SETTINGS)
