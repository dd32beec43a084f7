"""`.dev.vars`: the project's local secrets, in dotenv syntax (wrangler reads it for `wrangler dev`).

Mayfly has no dev server, so `mayfly deploy` uploads the entries as secrets only when asked
(`--dev-vars`); otherwise it says the file was not uploaded. With `--env NAME`, `.dev.vars.NAME`
is used instead when it exists, as in wrangler. The parser follows the `dotenv` package wrangler
uses: `KEY=value`, optional `export`, `#` comments, single, double or back quotes (double quotes
expand `\\n` and `\\r`; quoted values may span lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mayfly.project.config import Project
from mayfly.project.errors import ProjectError
from mayfly.project.resources import BINDING_NAME_RE

FILENAME = ".dev.vars"
# The `dotenv` package's LINE expression (lib/main.js), unchanged.
_LINE = re.compile(
    r"(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*\"(?:\\\"|[^\"])*\""
    r"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class DevVars:
    path: Path
    values: dict[str, str]


def parse_dotenv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for match in _LINE.finditer(text.replace("\r\n", "\n").replace("\r", "\n")):
        key, raw = match.group(1), (match.group(2) or "").strip()
        quote = raw[:1]
        value = re.sub(r"^(['\"`])([\s\S]*)\1$", r"\2", raw)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        out[key] = value
    return out


def find_dev_vars(project: Project) -> Path | None:
    if project.env is not None:
        specific = project.root / f"{FILENAME}.{project.env}"
        if specific.is_file():
            return specific
    path = project.root / FILENAME
    return path if path.is_file() else None


def read_dev_vars(project: Project) -> DevVars | None:
    """The project's .dev.vars (or .dev.vars.<env>), or None. Raises ProjectError."""
    path = find_dev_vars(project)
    if path is None:
        return None
    try:
        values = parse_dotenv(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError.single(f"{path} cannot be read: {exc}") from exc
    bad = [key for key in values if not BINDING_NAME_RE.match(key)]
    if bad:
        raise ProjectError.single(
            f"{path}: {', '.join(bad)} cannot be secret names (they must be JavaScript "
            "identifiers)."
        )
    return DevVars(path, values)
