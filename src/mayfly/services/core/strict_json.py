"""JSON from untrusted clients: bounded nesting, integers that fit 64 bits, finite numbers only.

The standard parser recurses once per level (a few thousand `[` raise RecursionError), accepts
integers of thousands of digits (that overflow the database later) and turns `1e999` into
infinity. Everything here fails as a ValidationError, a 400, instead.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mayfly.errors import ValidationError

MAX_DEPTH = 64
MAX_INT = 2**63 - 1  # what every column and every consumer of these numbers can hold
MIN_INT = -(2**63)

# A string (skipped whole: brackets inside strings do not nest) or a bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_OPENERS = frozenset("[{")


class _Refused(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise _Refused(f"the number {text[:24]}… is too large")
    value = int(text)
    if not MIN_INT <= value <= MAX_INT:
        raise _Refused(f"the number {text} is outside the 64-bit range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:24]} is not finite")
    return value


def _parse_constant(name: str) -> float:
    raise _Refused(f"{name} is not JSON")


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in _OPENERS:
            depth += 1
            if depth > limit:
                raise ValidationError(f"The JSON nests deeper than {limit} levels.")
        elif token in ("]", "}"):
            depth -= 1


def loads(raw: str | bytes, what: str = "The request body") -> Any:
    """Parse `raw` as JSON within the bounds above; ValidationError (400) otherwise."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{what} is not UTF-8 JSON.") from exc
    check_depth(text)
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except _Refused as exc:
        raise ValidationError(f"{what} is not acceptable JSON: {exc}.") from exc
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from exc


def require_int(value: Any, name: str, minimum: int = MIN_INT, maximum: int = MAX_INT) -> int:
    """An integer field (booleans are not integers here), within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number, not {type(value).__name__}.")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}.")
    return value
