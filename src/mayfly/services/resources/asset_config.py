"""An upload's assets config checked (html and 404 handling, base path, run_worker_first) and
its _redirects/_headers parsed into the rules a version stores."""

from __future__ import annotations

import logging
import re
from typing import Any

from mayfly.errors import ValidationError
from mayfly.services.resources.asset_rules import RuleWarning, parse_headers, parse_redirects

log = logging.getLogger("mayfly.assets")

HTML_HANDLING = ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none")
NOT_FOUND_HANDLING = ("none", "404-page", "single-page-application")
CONFIG_KEYS = {
    "html_handling",
    "not_found_handling",
    "base_path",
    "run_worker_first",
    "_redirects",
    "_headers",
}


CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z\d+.-]*:")
MAX_STARS_PER_RULE = 2  # the router's glob regexes backtrack: /*a*a*b on a long path takes seconds


def check_base_path(value: Any) -> None:
    """The asset-worker's own rules (normalizeBasePath): it refuses to serve anything else."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValidationError("assets.config.base_path must be a path starting with '/'.")
    if value.startswith("//") or SCHEME.match(value):
        raise ValidationError("assets.config.base_path must be a pathname, not a URL.")
    for bad, what in (
        ("\\", "backslashes"),
        ("?", "query strings"),
        ("#", "fragments"),
        ("%", "percent-encoded sequences"),
    ):
        if bad in value:
            raise ValidationError(f"assets.config.base_path must not contain {what}.")
    if CONTROL_CHARACTER.search(value):
        raise ValidationError("assets.config.base_path must not contain control characters.")


def check_rules(rules: list[Any]) -> None:
    if len(rules) > 100:
        raise ValidationError("run_worker_first allows at most 100 rules.")
    if not all(isinstance(r, str) and len(r) < 100 and r.startswith(("/", "!/")) for r in rules):
        raise ValidationError(
            "run_worker_first rules are strings under 100 characters starting with '/' or '!/'."
        )
    if any(r.count("*") > MAX_STARS_PER_RULE for r in rules):
        raise ValidationError(
            f"run_worker_first rules may use '*' at most {MAX_STARS_PER_RULE} times each."
        )
    if not any(r.startswith("/") for r in rules):
        raise ValidationError("run_worker_first needs at least one non-negative rule.")


def check_config(
    config: Any, has_worker: bool, messages: list[str] | None = None
) -> dict[str, Any]:
    """Validate metadata.assets.config; the stored config adds the parsed _redirects/_headers
    rules (`redirects`, `headers`, the asset-worker's format). Lines skipped in those files become
    `messages` (the upload response's), or debug logs without a list."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValidationError("assets.config must be an object.")
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValidationError(f"Unknown assets.config key(s): {', '.join(sorted(unknown))}.")
    if config.get("html_handling", "auto-trailing-slash") not in HTML_HANDLING:
        raise ValidationError(f"assets.config.html_handling must be one of {HTML_HANDLING}.")
    if config.get("not_found_handling", "none") not in NOT_FOUND_HANDLING:
        raise ValidationError(
            f"assets.config.not_found_handling must be one of {NOT_FOUND_HANDLING}."
        )
    check_base_path(config.get("base_path", "/"))
    first = config.get("run_worker_first", False)
    if isinstance(first, list):
        check_rules(first)
    elif not isinstance(first, bool):
        raise ValidationError("assets.config.run_worker_first must be true, false or a rule list.")
    if first and not has_worker:
        raise ValidationError("run_worker_first needs a Worker script (main_module).")
    for key in ("_redirects", "_headers"):
        if key in config and (not isinstance(config[key], str) or len(config[key]) > 200_000):
            raise ValidationError(f"assets.config.{key} must be the file's text (at most 200 kB).")
    out = dict(config)
    # As miniflare: a file in which nothing is valid adds no rules, and is no error.
    if "_redirects" in config:
        redirects, warnings = parse_redirects(config["_redirects"], config.get("html_handling"))
        if redirects is not None:
            out["redirects"] = redirects
        _report("_redirects", warnings, messages)
    if "_headers" in config:
        headers, warnings = parse_headers(config["_headers"])
        if headers is not None:
            out["headers"] = headers
        _report("_headers", warnings, messages)
    return out


MAX_RULE_MESSAGES = 20  # per file: a file of garbage should not make a huge upload response


def _report(filename: str, warnings: list[RuleWarning], messages: list[str] | None) -> None:
    lines = [f"Skipped in {w.render(filename)}" for w in warnings]
    for line in lines:
        log.debug("%s", line)
    if messages is None:
        return
    messages.extend(lines[:MAX_RULE_MESSAGES])
    if len(lines) > MAX_RULE_MESSAGES:
        messages.append(f"… and {len(lines) - MAX_RULE_MESSAGES} more in {filename}.")
