"""AS1–AS3: static asset upload sessions and uploads (spec wrangler-assets.md §4–5)."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import account_access, in_thread, services, signed_upload_token
from mayfly.api.bodies import read_form
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import INTEGER, OCTETS, STRING, array, nullable, obj, operation
from mayfly.errors import ValidationError

TAG = "Workers static assets"
JWT_RESULT = obj({"jwt": nullable(STRING)}, "jwt")
UPLOAD_PARTS = {
    # one part per file, named by its hash; base64 text when ?base64=true
    "multipart/form-data": {"type": "object", "additionalProperties": STRING}
}


@operation(
    "POST",
    "Open an assets upload session: which files (by hash) the server still needs",
    operation_id="worker-assets-upload-session",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "manifest": {
                    "type": "object",
                    "additionalProperties": obj(
                        {"hash": {"type": "string", "maxLength": 64}, "size": INTEGER},
                        "hash",
                        "size",
                    ),
                }
            },
            "manifest",
        )
    },
    body_required=True,
    result=obj({"jwt": STRING, "buckets": array(array(STRING))}, "jwt"),
)
async def upload_session(request: Request) -> Response:
    """AS1: answered for a Worker that does not exist yet (first deploys open it first)."""
    who, account = await account_access(request)
    body = await json_body(request)
    assets, script = services(request).assets, request.path_params["script"]
    return ok(await in_thread(lambda: assets.open_session(who, account, script, body)))


def _finished(complete: bool, token: str | None) -> Response:
    # 202 {"jwt": null} until the set is complete, then 201 with the completion token.
    return ok({"jwt": token}, status=201 if complete else 202)


@operation(
    "POST",
    "Upload one bucket of files (201 with the completion token once all are in)",
    operation_id="worker-assets-upload",
    tag=TAG,
    auth="upload",
    query={"base64": {"type": "string", "enum": ["true", "false"]}},
    body=UPLOAD_PARTS,
    body_required=True,
    status=202,
    result=JWT_RESULT,
)
async def upload_bucket(request: Request) -> Response:
    """AS2: one bucket, multipart, a part per hash; authorised by the session's upload token."""
    svc = services(request)
    token = signed_upload_token(request)  # before the body is read
    limit = svc.ctx.settings.max_asset_body_bytes
    files: list[tuple[str, bytes, str | None]] = []
    form = await read_form(request, max_files=1000, max_fields=1000, max_part_size=limit)
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append((name, await value.read(), value.content_type))
            else:
                files.append((name, value.encode(), None))
    finally:
        await form.close()
    if not files:
        raise ValidationError("An asset upload needs one part per file, named by its hash.")
    encoded = request.query_params.get("base64") == "true"
    account_id = request.path_params["account_id"]
    complete, completion = await in_thread(
        lambda: svc.assets.upload(account_id, token, files, encoded)
    )
    return _finished(complete, completion)


@operation(
    "POST",
    "Upload one file, raw",
    tag=TAG,
    auth="upload",
    body=OCTETS,
    status=202,
    result=JWT_RESULT,
)
async def upload_one(request: Request) -> Response:
    """AS3: one raw file (single-file mode)."""
    token = signed_upload_token(request)  # before the body is read
    data = await request.body()
    assets, account_id = services(request).assets, request.path_params["account_id"]
    files = [(request.path_params["hash"], data, request.headers.get("content-type"))]
    complete, completion = await in_thread(lambda: assets.upload(account_id, token, files, False))
    return _finished(complete, completion)


A = "/accounts/{account_id}/workers"
routes = [
    Route(A + "/scripts/{script}/assets-upload-session", upload_session, methods=["POST"]),
    Route(A + "/assets/upload", upload_bucket, methods=["POST"]),
    Route(A + "/assets/upload/{hash}", upload_one, methods=["POST"]),
]
