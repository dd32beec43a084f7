"""JavaScript's view of a `_redirects`/`_headers` rule, as workers-shared's parsers see it:
the WHATWG URL pathname (validateURL.ts, `new URL`), `Number()`, `trim()`, UTF-16 lengths."""

from __future__ import annotations

import math
import re

# ECMAScript's WhiteSpace and LineTerminator (`\s`, String.prototype.trim); Python's differ.
JS_SPACE = "".join(
    [
        "\t\n\v\f\r \u00a0\u1680",
        *map(chr, range(0x2000, 0x200B)),
        "\u2028\u2029\u202f\u205f\u3000\ufeff",
    ]
)

_HTTPS_URL = re.compile(r"https://+(?P<host>[^/]+)/?(?P<path>[^\n\r\u2028\u2029]*)")
_PORT = re.compile(r":[0-9]+\Z")


# -- URLs (workers-shared validateURL.ts) ----------------------------------------------------------


class InvalidUrl(ValueError):
    """A path or target a rule cannot use; the message is Cloudflare's."""


def validate_url(
    token: str,
    *,
    only_relative: bool = False,
    disallow_ports: bool = False,
    include_search: bool = False,
    include_hash: bool = False,
) -> str:
    """A rule's path or target, normalised; InvalidUrl says why it is refused.

    `https://host/path` keeps its host (lowercase scheme only, as Cloudflare's regex); anything
    else must be a path starting with '/' (added when `only_relative`).
    """
    https = _HTTPS_URL.match(token)
    if https:
        host = https.group("host")
        if only_relative:
            raise InvalidUrl(f"Only relative URLs are allowed. Skipping absolute URL {token}.")
        if disallow_ports and _PORT.search(host):
            raise InvalidUrl(f"Specifying ports is not supported. Skipping absolute URL {token}.")
        path = extract_pathname(https.group("path"), include_search, include_hash)
        return f"https://{host}{path}"
    if only_relative and not token.startswith("/"):
        token = f"/{token}"
    if token.startswith("/"):
        return extract_pathname(token, include_search, include_hash)
    raise InvalidUrl(
        "URLs should either be relative (e.g. begin with a forward-slash), or use HTTPS "
        '(e.g. begin with "https://").'
    )


def extract_pathname(path: str, include_search: bool = False, include_hash: bool = False) -> str:
    """`new URL("//" + path, "relative://")`'s pathname (and search, hash) as Node computes it
    (the WHATWG URL standard, but for "/.."): for that non-special scheme with an empty host,
    parsing never fails."""
    if not path.startswith("/"):
        path = f"/{path}"
    # The URL parser works on scalar values, strips C0 controls and spaces from the ends (the
    # leading "/" protects the start) and drops tabs and newlines anywhere.
    text = _to_scalar_values(path).rstrip("".join(map(chr, range(0x21))))
    text = text.translate({0x09: None, 0x0A: None, 0x0D: None})[1:]  # past the path's first "/"
    fragment: str | None = None
    query: str | None = None
    text, hash_mark, rest = text.partition("#")
    if hash_mark:
        fragment = rest
    text, question_mark, rest = text.partition("?")
    if question_mark:
        query = rest
    segments: list[str] = []
    parts = text.split("/")
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        segment = _percent_encode(part, _PATH_SET)
        lowered = segment.lower()
        if lowered in _DOUBLE_DOT:
            # Node's URL (ada 2.9) keeps an empty path empty: "/.." is "" (the standard says "/").
            if segments:
                segments.pop()
                if last:
                    segments.append("")
        elif lowered in _SINGLE_DOT:
            if last:
                segments.append("")
        else:
            segments.append(segment)
    out = "".join(f"/{segment}" for segment in segments)
    if include_search and query:
        out += f"?{_percent_encode(query, _QUERY_SET)}"
    if include_hash and fragment:
        out += f"#{_percent_encode(fragment, _FRAGMENT_SET)}"
    return out


_SINGLE_DOT = frozenset({".", "%2e"})
_DOUBLE_DOT = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})
_QUERY_SET = frozenset(' "#<>')  # plus C0 controls and above U+007E, for every set
_PATH_SET = _QUERY_SET | frozenset("?`{}")
_FRAGMENT_SET = frozenset(' "<>`')


def _percent_encode(text: str, extra: frozenset[str]) -> str:
    if text.isascii() and not any(c in extra or c < " " or c == "\x7f" for c in text):
        return text
    return "".join(
        "".join(f"%{byte:02X}" for byte in c.encode()) if c in extra or c < " " or c > "~" else c
        for c in text
    )


def _to_scalar_values(text: str) -> str:
    """A lone surrogate (possible in JSON text) becomes U+FFFD, as JavaScript's USVString."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def has_host(url: str) -> bool:
    return _HTTPS_URL.match(url) is not None


# -- JavaScript semantics ----------------------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = {"0x": 16, "0o": 8, "0b": 2}
_RADIX_DIGITS = {16: "[0-9a-fA-F]+", 8: "[0-7]+", 2: "[01]+"}


def js_trim(text: str) -> str:
    return text.strip(JS_SPACE)


def js_number(text: str) -> float:
    """`Number(text)`: decimal, Infinity, or 0x/0o/0b integers; NaN otherwise."""
    text = js_trim(text)
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    radix = _RADIX.get(text[:2].lower())
    if radix and re.fullmatch(_RADIX_DIGITS[radix], text[2:]):
        return float(int(text[2:], radix))
    return math.nan


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
