"""wrangler.toml / wrangler.json / wrangler.jsonc → a normalised Project, with diagnostics.

Like wrangler, the configuration is searched from the working directory upwards, and JSON wins over
TOML when a directory has both. `--env NAME` selects an `[env.NAME]` section (environments.py).
Everything the CLI acts on is validated here, so a mistake is reported once, with the file it is
in, before anything is uploaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os.path
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayfly import surface
from mayfly.project.environments import select_environment
from mayfly.project.errors import Diagnostic, ProjectError, UnsupportedFeature
from mayfly.project.resources import (
    BINDING_NAME_RE,
    AssetsConfig,
    D1Database,
    KVNamespace,
    R2Bucket,
    ResourceChecker,
    ServiceBinding,
)

CONFIG_FILES = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")

# The same rules as the API's (a Worker name is a DNS label in its URL).
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

USED_KEYS = frozenset(
    {
        "name",
        "main",
        "compatibility_date",
        "compatibility_flags",
        "vars",
        "account_id",
        "kv_namespaces",
        "r2_buckets",
        "d1_databases",
        "services",
        "assets",
        "triggers",
    }
)
# Keys that change nothing on Mayfly: accepted without a word.
QUIET_KEYS = frozenset(
    {
        "$schema",
        "workers_dev",
        "preview_urls",
        "observability",
        "send_metrics",
        "keep_vars",
        "no_bundle",
        "minify",
        "upload_source_maps",
        "logpush",
        "keep_names",
        "placement",
        "limits",
    }
)


@dataclass(frozen=True)
class Project:
    """A Worker project: what to upload and how to run it. `main` is relative to `root`; it is
    None for an assets-only Worker."""

    root: Path
    config_path: Path | None
    name: str
    main: str | None
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    account_id: str | None = None
    kv_namespaces: tuple[KVNamespace, ...] = ()
    r2_buckets: tuple[R2Bucket, ...] = ()
    d1_databases: tuple[D1Database, ...] = ()
    services: tuple[ServiceBinding, ...] = ()
    assets: AssetsConfig | None = None
    env: str | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    # `[triggers] crons`: None when the project does not say (the Worker's are left alone).
    crons: tuple[str, ...] | None = None

    @property
    def warnings(self) -> list[str]:
        return [d.message for d in self.diagnostics if d.severity == "warning"]

    def bindings(self) -> list[dict[str, Any]]:
        """`vars` as upload bindings: strings as plain_text, anything else as json."""
        out: list[dict[str, Any]] = []
        for name, value in self.vars.items():
            if isinstance(value, str):
                out.append({"name": name, "type": "plain_text", "text": value})
            else:
                out.append({"name": name, "type": "json", "json": value})
        for bucket in self.r2_buckets:
            out.append(
                {"name": bucket.binding, "type": "r2_bucket", "bucket_name": bucket.bucket_name}
            )
        for database in self.d1_databases:
            # The deploy fills in `id` when the configuration gives only a name (sdk/deploy.py).
            d1: dict[str, Any] = {"name": database.binding, "type": "d1"}
            if database.database_id:
                d1["id"] = database.database_id
            if database.database_name:
                d1["database_name"] = database.database_name
            out.append(d1)
        for service in self.services:
            binding = {"name": service.binding, "type": "service", "service": service.service}
            if service.entrypoint:
                binding["entrypoint"] = service.entrypoint
            out.append(binding)
        return out


def find_config(start: Path) -> Path | None:
    """The nearest wrangler.json, wrangler.jsonc or wrangler.toml in `start` or a parent."""
    for directory in (start, *start.parents):
        for filename in CONFIG_FILES:
            candidate = directory / filename
            if candidate.is_file():
                return candidate
    return None


def read_config(path: Path) -> dict[str, Any]:
    """Parse a configuration file; syntax errors name the file and the position."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError.single(f"{path}: cannot be read ({exc}).") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        else:
            import json5  # only for wrangler.json and wrangler.jsonc

            data = json5.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ProjectError.single(f"{path}: not valid {_syntax(path)}: {exc}") from exc
    if not isinstance(data, dict):
        raise ProjectError.single(f"{path}: the top level must be an object.")
    return data


def _syntax(path: Path) -> str:
    return {".toml": "TOML", ".json": "JSON", ".jsonc": "JSON with comments"}[path.suffix]


def load_project(
    cwd: Path,
    *,
    config: Path | None = None,
    name: str | None = None,
    main: str | None = None,
    env: str | None = None,
    require_main: bool = True,
) -> Project:
    """Read the project around `cwd`. `name` and `main` (a path relative to `cwd`) override the
    configuration; with both, no configuration file is needed. `env` selects `[env.<env>]`.
    Commands that only need the Worker's name and bindings pass `require_main=False`.
    Raises ProjectError."""
    cwd = cwd.resolve()
    config_path = (cwd / config).resolve() if config else find_config(cwd)
    if config is not None and (config_path is None or not config_path.is_file()):
        raise ProjectError.single(f"The configuration file {config} does not exist.")
    if config_path is None and (name is None or main is None):
        raise ProjectError.single(
            f"No {', '.join(CONFIG_FILES[:-1])} or {CONFIG_FILES[-1]} in {cwd} or its parents. "
            "Create one (name, main, compatibility_date), or pass ENTRY and --name."
        )
    whole = read_config(config_path) if config_path else {}
    root = config_path.parent if config_path else cwd
    where = config_path.name if config_path else "the command line"
    diagnostics: list[Diagnostic] = []
    if config_path is not None:
        siblings = [f for f in CONFIG_FILES if (root / f).is_file() and f != config_path.name]
        if siblings:
            diagnostics.append(
                Diagnostic("warning", f"Using {config_path.name}; ignoring {', '.join(siblings)}.")
            )
    checker = _Checker(where, diagnostics)
    resources = ResourceChecker(checker)
    raw, env_errors, env_warnings = select_environment(whole, env)
    for message in env_errors:
        checker.error(message)
    for message in env_warnings:
        checker.warn(message)
    raw_main = cwd / main if main is not None else raw.get("main")
    assets = resources.assets(raw.get("assets"), root)
    has_main = raw_main not in (None, "")
    project = Project(
        root=root,
        config_path=config_path,
        name=checker.name(name if name is not None else raw.get("name")),
        main=(
            checker.main(raw_main, root) if has_main or (require_main and assets is None) else None
        ),
        compatibility_date=checker.date(raw.get("compatibility_date")),
        compatibility_flags=checker.flags(raw.get("compatibility_flags")),
        vars=checker.vars(raw.get("vars")),
        account_id=checker.optional_str("account_id", raw.get("account_id")),
        kv_namespaces=resources.kv_namespaces(raw.get("kv_namespaces")),
        r2_buckets=resources.r2_buckets(raw.get("r2_buckets")),
        d1_databases=resources.d1_databases(raw.get("d1_databases")),
        services=resources.services(raw.get("services")),
        assets=assets,
        env=env,
        crons=checker.crons(raw.get("triggers")),
    )
    if require_main:
        resources.assets_need_main(project.main, project.assets)
    names = [b.binding for b in project.kv_namespaces] + list(project.vars)
    names += [b.binding for b in project.r2_buckets] + [s.binding for s in project.services]
    names += [d.binding for d in project.d1_databases]
    if project.assets is not None and project.assets.binding:
        names.append(project.assets.binding)
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        checker.error(
            f"the binding name {duplicate!r} is used twice "
            "(vars, kv_namespaces, r2_buckets, d1_databases, services, assets)."
        )
    refused = False
    for key in raw:
        refusal = surface.refused_config(key, raw[key])
        if refusal:
            refused = True
            checker.error(refusal)
        elif key not in USED_KEYS and key not in QUIET_KEYS:
            diagnostics.append(
                Diagnostic("warning", f"{where}: `{key}` is not supported by Mayfly yet; ignored.")
            )
    if any(d.severity == "error" for d in diagnostics):
        raise (UnsupportedFeature if refused else ProjectError)(diagnostics)
    return dataclasses.replace(project, diagnostics=tuple(diagnostics))


class _Checker:
    """Validates one field at a time, collecting every problem rather than stopping at the first."""

    def __init__(self, where: str, diagnostics: list[Diagnostic]) -> None:
        self.where = where
        self.diagnostics = diagnostics

    def error(self, message: str) -> None:
        self.diagnostics.append(Diagnostic("error", f"{self.where}: {message}"))

    def warn(self, message: str) -> None:
        self.diagnostics.append(Diagnostic("warning", f"{self.where}: {message}"))

    def name(self, value: Any) -> str:
        if value is None or value == "":
            self.error("`name` is missing: set the Worker's name (or pass --name).")
            return ""
        if not isinstance(value, str) or not NAME_RE.match(value):
            self.error(
                f"`name` {value!r} must be 1-63 lowercase letters, digits, '-' or '_', "
                "starting and ending with a letter or digit."
            )
            return str(value)
        return value

    def main(self, value: Any, root: Path) -> str:
        if value is None or value == "":
            self.error("`main` is missing: set the entry module (or pass ENTRY).")
            return ""
        if not isinstance(value, str | Path):
            self.error(f"`main` must be a path, not {value!r}.")
            return ""
        path = Path(value) if isinstance(value, Path) else root / value
        try:
            relative = _lexical(path).relative_to(root)
        except ValueError:
            self.error(f"`main` {str(value)!r} is outside the project directory {root}.")
            return ""
        return relative.as_posix()

    def date(self, value: Any) -> str | None:
        if value is None:
            self.warn("no `compatibility_date`; the platform's default date applies.")
            return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value.isoformat()
        if not isinstance(value, str) or not DATE_RE.match(value):
            self.error(f"`compatibility_date` {value!r} is not a date like 2025-01-01.")
            return None
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            self.error(f"`compatibility_date` {value!r} is not a valid date.")
            return None
        return value

    def flags(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
            self.error("`compatibility_flags` must be a list of strings.")
            return ()
        return tuple(dict.fromkeys(value))

    def vars(self, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error("`vars` must be a table (TOML) or an object (JSON).")
            return {}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not BINDING_NAME_RE.match(key):
                self.error(f"`vars.{key}`: a variable name must be a JavaScript identifier.")
                continue
            if _has_datetime(item):
                self.error(f"`vars.{key}`: TOML dates and times are not supported; quote them.")
                continue
            out[key] = item
        return out

    def crons(self, value: Any) -> tuple[str, ...] | None:
        """`[triggers] crons = [...]`, each checked as the server will (mayfly/cron.py)."""
        if value is None:
            return None
        if not isinstance(value, dict) or not set(value) <= {"crons"}:
            self.error('`triggers` must be a table with one key, `crons` (["*/5 * * * *"]).')
            return None
        crons = value.get("crons")
        if crons is None:
            return None
        if not isinstance(crons, list) or not all(isinstance(c, str) for c in crons):
            self.error("`triggers.crons` must be a list of cron expressions (strings).")
            return None
        from mayfly import cron  # only for a project with cron triggers

        for expression in crons:
            try:
                cron.parse(expression)
            except cron.CronError as exc:
                self.error(f"`triggers.crons`: {exc.message}")
                return None
        return tuple(dict.fromkeys(c.strip() for c in crons))

    def optional_str(self, key: str, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.error(f"`{key}` must be a string.")
            return None
        return value


def _has_datetime(value: Any) -> bool:
    if isinstance(value, dt.date | dt.time):
        return True
    if isinstance(value, dict):
        return any(_has_datetime(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_datetime(v) for v in value)
    return False


def _lexical(path: Path) -> Path:
    """`path` made absolute with `..` folded away, without following symlinks."""
    return Path(os.path.normpath(path.absolute()))
