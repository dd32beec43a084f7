"""Pages-format `_redirects` and `_headers` → the asset-worker's rule objects (spec §7.5).

A port of Cloudflare's workers-shared parsers (parseRedirects/parseHeaders, then
constructRedirects/constructHeaders, as miniflare and wrangler run them): the same limits, the same
lines skipped with the same warnings, the same split of redirects into static rules (exact paths,
looked up by key) and dynamic ones (splats and placeholders, matched in order). A file in which
nothing is valid yields no rules, not an error: Cloudflare deploys it anyway.

JavaScript semantics that decide the output are kept: whitespace is ECMAScript's `\\s`, line
lengths count UTF-16 code units, a status is read with `Number()`, and a path is normalised the way
`new URL("//" + path, "relative://")` does (dot segments, percent-encoding), which is what
`extractPathname` relies on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

from mayfly.services.resources.asset_urls import (
    JS_SPACE,
    InvalidUrl,
    extract_pathname,
    has_host,
    js_number,
    js_trim,
    utf16_length,
    validate_url,
)

REDIRECTS_VERSION: Literal[1] = 1
HEADERS_VERSION: Literal[2] = 2
PERMITTED_STATUS_CODES = frozenset({200, 301, 302, 303, 307, 308})
MAX_LINE_LENGTH = 2000
MAX_HEADER_RULES = 100
MAX_DYNAMIC_REDIRECT_RULES = 100
MAX_STATIC_REDIRECT_RULES = 2000
UNSET_OPERATOR = "! "
HEADER_SEPARATOR = ":"


__all__ = ["INFINITE_LOOP", "RuleWarning", "extract_pathname", "parse_headers", "parse_redirects"]

_JS_SPACES = re.compile(f"[{JS_SPACE}]+")
_TRAILING_COMMENT = re.compile(f"[{JS_SPACE}]+#[^\n\r\u2028\u2029]*\\Z")
SPLAT = re.compile(r"\*")
PLACEHOLDER = re.compile(r":[A-Za-z]")  # JS /:[A-Za-z]\w*/: only whether it occurs matters
_SPLAT_PLACEHOLDER = re.compile(r":splat(?![A-Za-z0-9_])")
_LOOKS_LIKE_A_PATH = re.compile(f"[^{JS_SPACE}]+://|/")
_TO_INDEX = re.compile("/index([^\n\r\u2028\u2029]html)?\\Z")

INFINITE_LOOP = (
    "Infinite loop detected in this rule and has been ignored. This will cause a redirect to "
    "strip `.html` or `/index` and end up triggering this rule again. Please fix or remove this "
    "rule to silence this warning."
)


class StaticRedirect(TypedDict):
    status: int
    to: str
    lineNumber: int


class DynamicRedirect(TypedDict):
    status: int
    to: str


class Redirects(TypedDict):
    version: Literal[1]
    staticRules: dict[str, StaticRedirect]
    rules: dict[str, DynamicRedirect]


class HeaderRule(TypedDict):
    set: NotRequired[dict[str, str]]
    unset: NotRequired[list[str]]


class Headers(TypedDict):
    version: Literal[2]
    rules: dict[str, HeaderRule]


@dataclass(frozen=True)
class RuleWarning:
    """A skipped line or limit (the parsers' `invalid` entries): what wrangler prints."""

    message: str
    line: str | None = None
    line_number: int | None = None

    def render(self, filename: str) -> str:
        if self.line is None:
            return f"{filename}: {self.message}"
        where = f"{filename}:{self.line_number}" if self.line_number else filename
        return f"{where} ({self.line}): {self.message}"


# -- redirects -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Redirect:
    source: str
    to: str
    status: int
    line_number: int


def parse_redirects(
    text: str,
    html_handling: str | None = None,
    *,
    max_static_rules: int = MAX_STATIC_REDIRECT_RULES,
    max_dynamic_rules: int = MAX_DYNAMIC_REDIRECT_RULES,
    max_line_length: int = MAX_LINE_LENGTH,
) -> tuple[Redirects | None, list[RuleWarning]]:
    """`_redirects` text → the asset-worker's redirects (None if no line is valid) and warnings.

    Each line is `from to [status]`; `html_handling` only matters for the loop rule (`/ /index`
    loops only when HTML handling strips `/index`, `/* /index` always does).
    """
    lines = text.split("\n")
    found: list[_Redirect] = []
    seen: set[str] = set()
    warnings: list[RuleWarning] = []
    static_count = dynamic_count = 0
    can_create_static = True
    for number, line in _significant(lines, max_line_length, warnings):
        tokens = _JS_SPACES.split(_TRAILING_COMMENT.sub("", line, count=1))
        if not 2 <= len(tokens) <= 3:
            warnings.append(
                RuleWarning(
                    f"Expected exactly 2 or 3 whitespace-separated tokens. Got {len(tokens)}.",
                    line,
                    number,
                )
            )
            continue
        raw_from, raw_to, *rest = tokens
        raw_status = rest[0] if rest else "302"
        try:
            source = validate_url(raw_from, only_relative=True, disallow_ports=True)
        except InvalidUrl as exc:
            warnings.append(RuleWarning(str(exc), line, number))
            continue
        # Limits count every line with a valid `from`, even one skipped below for its target or
        # status; after the first dynamic line, every line counts as dynamic.
        if can_create_static and not _is_dynamic(source):
            static_count += 1
            if static_count > max_static_rules:
                warnings.append(
                    RuleWarning(
                        f"Maximum number of static rules supported is {max_static_rules}. "
                        "Skipping line."
                    )
                )
                continue
        else:
            dynamic_count += 1
            can_create_static = False
            if dynamic_count > max_dynamic_rules:
                warnings.append(
                    RuleWarning(
                        f"Maximum number of dynamic rules supported is {max_dynamic_rules}. "
                        f"Skipping remaining {len(lines) - number + 1} lines of file."
                    )
                )
                break
        try:
            to = validate_url(raw_to, include_search=True, include_hash=True)
        except InvalidUrl as exc:
            warnings.append(RuleWarning(str(exc), line, number))
            continue
        status = js_number(raw_status)
        if status not in PERMITTED_STATUS_CODES:
            warnings.append(
                RuleWarning(
                    "Valid status codes are 200, 301, 302 (default), 303, 307, or 308. "
                    f"Got {raw_status}.",
                    line,
                    number,
                )
            )
            continue
        absolute = has_host(to)
        to_index = _TO_INDEX.search(to) is not None
        if not absolute and (
            (source.endswith("/*") and to_index)
            or (source.endswith("/") and to_index and html_handling != "none")
        ):
            warnings.append(RuleWarning(INFINITE_LOOP, line, number))
            continue
        if source in seen:
            warnings.append(
                RuleWarning(f"Ignoring duplicate rule for path {source}.", line, number)
            )
            continue
        seen.add(source)  # before the check below: a refused rewrite still claims its path
        if status == 200 and absolute:
            warnings.append(
                RuleWarning(
                    f"Proxy (200) redirects can only point to relative paths. Got {to}",
                    line,
                    number,
                )
            )
            continue
        found.append(_Redirect(source, to, int(status), number))
    return _construct_redirects(found), warnings


def _construct_redirects(found: list[_Redirect]) -> Redirects | None:
    """Static rules are the exact paths before the first dynamic one; the rest match in order."""
    if not found:
        return None
    static: dict[str, StaticRedirect] = {}
    dynamic: dict[str, DynamicRedirect] = {}
    can_create_static = True
    for rule in found:
        if can_create_static and not _is_dynamic(rule.source):
            static[rule.source] = {
                "status": rule.status,
                "to": rule.to,
                "lineNumber": rule.line_number,
            }
            continue
        dynamic[rule.source] = {"status": rule.status, "to": rule.to}
        can_create_static = False
    return {"version": REDIRECTS_VERSION, "staticRules": static, "rules": dynamic}


def _is_dynamic(path: str) -> bool:
    return SPLAT.search(path) is not None or PLACEHOLDER.search(path) is not None


# -- headers ---------------------------------------------------------------------------------------


@dataclass
class _HeaderBlock:
    path: str
    line: str
    headers: dict[str, str]
    unset: list[str]


def parse_headers(
    text: str,
    *,
    max_rules: int = MAX_HEADER_RULES,
    max_line_length: int = MAX_LINE_LENGTH,
) -> tuple[Headers | None, list[RuleWarning]]:
    """`_headers` text → the asset-worker's headers (None if no rule is valid) and warnings.

    A path line (`/…` or `scheme://…`) opens a rule; indented `Name: value` lines set headers
    (names lowercased, repeats joined with ", "), `! Name` lines unset one.
    """
    lines = text.split("\n")
    found: list[_HeaderBlock] = []
    warnings: list[RuleWarning] = []
    block: _HeaderBlock | None = None
    skip_until_next_path = False
    for number, line in _significant(lines, max_line_length, warnings):
        if _LOOKS_LIKE_A_PATH.match(line):
            skip_until_next_path = False
            # Counts finished rules only: the one still open when the limit is hit is kept.
            if len(found) >= max_rules:
                warnings.append(
                    RuleWarning(
                        f"Maximum number of rules supported is {max_rules}. "
                        f"Skipping remaining {len(lines) - number + 1} lines of file."
                    )
                )
                break
            if block is not None:
                if block.headers or block.unset:
                    found.append(block)
                else:
                    # Cloudflare reports the line number of the path that follows.
                    warnings.append(RuleWarning("No headers specified", block.line, number))
            block = None
            try:
                path = validate_url(line, disallow_ports=True)
            except InvalidUrl as exc:
                warnings.append(RuleWarning(str(exc), line, number))
                skip_until_next_path = True
                continue
            wildcard_error = _wildcard_error(path)
            if wildcard_error:
                warnings.append(RuleWarning(wildcard_error, line, number))
                skip_until_next_path = True
                continue
            block = _HeaderBlock(path, line, {}, [])
            continue
        if skip_until_next_path:
            continue
        if HEADER_SEPARATOR not in line:
            if block is None:
                message = "Expected a path beginning with at least one forward-slash"
            elif line.startswith(UNSET_OPERATOR):
                block.unset.append(line[len(UNSET_OPERATOR) :])
                continue
            else:
                message = "Expected a colon-separated header pair (e.g. name: value)"
            warnings.append(RuleWarning(message, line, number))
            continue
        raw_name, _, raw_value = line.partition(HEADER_SEPARATOR)
        name = js_trim(raw_name).lower()
        value = js_trim(raw_value)
        if " " in name:
            warnings.append(RuleWarning("Header name cannot include spaces", line, number))
        elif not name:
            warnings.append(RuleWarning("No header name specified", line, number))
        elif not value:
            warnings.append(RuleWarning("No header value specified", line, number))
        elif block is None:
            warnings.append(
                RuleWarning(f"Path should come before header ({name}: {value})", line, number)
            )
        else:
            existing = block.headers.get(name)
            block.headers[name] = f"{existing}, {value}" if existing else value
    if block is not None:
        if block.headers or block.unset:
            found.append(block)
        else:
            warnings.append(RuleWarning("No headers specified", block.line))
    return _construct_headers(found), warnings


def _construct_headers(found: list[_HeaderBlock]) -> Headers | None:
    """A path given twice keeps its first position and the later rule."""
    if not found:
        return None
    rules: dict[str, HeaderRule] = {}
    for block in found:
        rule: HeaderRule = {}
        if block.headers:
            rule["set"] = block.headers
        if block.unset:
            rule["unset"] = block.unset
        rules[block.path] = rule
    return {"version": HEADERS_VERSION, "rules": rules}


def _wildcard_error(path: str) -> str | None:
    stars = len(SPLAT.findall(path))
    if stars > 1:
        return (
            "Only one wildcard is allowed per rule. Use a named placeholder (e.g. :project) "
            f"instead. Skipping {path}."
        )
    if stars and _SPLAT_PLACEHOLDER.search(path):
        return (
            "Cannot combine a wildcard * with a :splat placeholder because wildcards are "
            f"converted to :splat at runtime. Skipping {path}."
        )
    return None


def _significant(
    lines: list[str], max_line_length: int, warnings: list[RuleWarning]
) -> Iterator[tuple[int, str]]:
    """Each line's number (from 1) and trimmed text, past blank lines and comments; a line over
    `max_line_length` UTF-16 units is skipped with a warning."""
    for index, raw in enumerate(lines):
        number = index + 1
        line = js_trim(raw)
        if not line or line.startswith("#"):
            continue
        if utf16_length(line) > max_line_length:
            warnings.append(_too_long(number, max_line_length))
            continue
        yield number, line


def _too_long(number: int, limit: int) -> RuleWarning:
    return RuleWarning(
        f"Ignoring line {number} as it exceeds the maximum allowed length of {limit}."
    )
