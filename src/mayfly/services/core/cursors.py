"""Opaque list cursors: the position a listing stopped at (a KV key, an R2 object name) as
URL-safe base64, and back."""

from __future__ import annotations

import base64

from mayfly.errors import ValidationError


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The position `encode_cursor` wrote; 400 for anything else."""
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("The cursor is not one this API returned.") from exc
