"""Download a Worker's deployed modules as multipart/form-data (wrangler, the SDKs)."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from mayfly.api.auth import services
from mayfly.api.openapi import operation
from mayfly.api.workers.common import TAG, in_worker, script_name

MODULE_TYPES = {
    "esm": "application/javascript+module",
    "cjs": "application/javascript",
    "text": "text/plain",
    "json": "application/json",
    "wasm": "application/wasm",
    "data": "application/octet-stream",
    "sourcemap": "application/source-map",
}
MULTIPART = {"multipart/form-data": {"type": "object", "additionalProperties": {"type": "string"}}}


@operation(
    "GET",
    "Download a Worker's deployed modules (multipart/form-data)",
    operation_id="worker-script-download-worker",
    tag=TAG,
    raw=MULTIPART,
)
@operation(
    "GET",
    "Download a Worker's deployed modules (multipart/form-data; CF-Entrypoint names the main one)",
    at="/content/v2",
    operation_id="worker-script-get-content",
    tag=TAG,
    raw=MULTIPART,
)
async def get_script(request: Request) -> Response:
    """The deployed version's modules as multipart/form-data, one part per module (as Cloudflare
    answers for module Workers), the main module named in `CF-Entrypoint`."""
    scripts, name = services(request).scripts, script_name(request)
    main, modules = await in_worker(
        request, lambda _, account: scripts.script_modules(account, name)
    )
    boundary = secrets.token_hex(16)
    body = bytearray()
    for module in modules:
        kind = MODULE_TYPES.get(module.kind, "application/octet-stream")
        body += (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{module.name}"; filename="{module.name}"\r\n'
            f"Content-Type: {kind}\r\n\r\n"
        ).encode()
        body += module.data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return Response(
        bytes(body),
        media_type=f"multipart/form-data; boundary={boundary}",
        headers={"CF-Entrypoint": main},
    )
