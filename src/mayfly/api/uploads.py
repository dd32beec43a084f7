"""Multipart Worker uploads → (metadata, modules). Parts are named by filename, else by name."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from mayfly.api.auth import services
from mayfly.errors import ValidationError
from mayfly.model import ModuleUpload
from mayfly.services.workers.uploads import UploadPlan, parse_metadata, plan_upload


async def read_upload(request: Request, max_bytes: int) -> UploadPlan:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ValidationError(
            "Upload a Worker as multipart/form-data: a `metadata` JSON part and one part per module."
        )
    try:
        form = await request.form(max_files=1000, max_fields=1000, max_part_size=max_bytes)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", str(exc))
        raise ValidationError(f"The multipart body could not be parsed: {detail}") from exc
    metadata_raw: Any = None
    parts: list[ModuleUpload] = []
    try:
        for name, value in form.multi_items():
            if name == "metadata":
                if metadata_raw is not None:
                    raise ValidationError(
                        "The upload has more than one `metadata` part (a duplicate part); "
                        "send exactly one."
                    )
                metadata_raw = await value.read() if isinstance(value, UploadFile) else value
                continue
            if isinstance(value, UploadFile):
                module_name = value.filename or name
                data = await value.read()
                ctype = value.content_type or ""
            else:
                module_name, data, ctype = name, value.encode(), ""
            parts.append(ModuleUpload(module_name, ctype, data))
    finally:
        await form.close()
    metadata = parse_metadata(metadata_raw)
    today = services(request).ctx.clock.now().date().isoformat()
    return plan_upload(metadata, parts, max_bytes, today)
