"""Request bodies read on the loop: a multipart form (400 when it cannot be parsed), raw bytes
counted as they stream (413 past a limit: nothing over it is held)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from mayfly.errors import PayloadTooLarge, ValidationError


async def read_form(
    request: Request, *, max_files: int, max_fields: int, max_part_size: int
) -> FormData:
    """The multipart form (close it when done); 10021 with the parser's reason when malformed."""
    try:
        return await request.form(
            max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
        )
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", str(exc))
        raise ValidationError(f"The multipart body could not be parsed: {detail}") from exc


async def read_capped(request: Request, limit: int, too_large: str) -> bytes:
    """The raw body, counted as it streams: PayloadTooLarge(`too_large`) once over `limit`."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(too_large)
    return bytes(body)
