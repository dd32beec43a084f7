"""The resources a Worker binds, as the configuration declares them: `[[kv_namespaces]]`,
`[[r2_buckets]]`, `[[d1_databases]]`, `[[services]]` and `[assets]`, validated with wrangler's rules (wrangler-assets.md §9). Problems go to the config
checker's report, so every one is listed at once.
"""

from __future__ import annotations

import os.path
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

BINDING_NAME_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")
HTML_HANDLING = ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none")
NOT_FOUND_HANDLING = ("single-page-application", "404-page", "none")
ASSETS_KEYS = frozenset(
    {
        "directory",
        "binding",
        "html_handling",
        "not_found_handling",
        "run_worker_first",
        "base_path",
    }
)


@dataclass(frozen=True)
class KVNamespace:
    """A `[[kv_namespaces]]` entry; without `id` the deploy provisions one (as wrangler does)."""

    binding: str
    id: str | None = None


@dataclass(frozen=True)
class R2Bucket:
    """A `[[r2_buckets]]` entry; the deploy creates a bucket that does not exist yet (as wrangler
    provisions one)."""

    binding: str
    bucket_name: str


@dataclass(frozen=True)
class D1Database:
    """A `[[d1_databases]]` entry. Without `database_id` the deploy finds the database by
    `database_name` (or the one the Worker's binding already uses, else `<worker>-<binding>`) and
    creates it when missing, as wrangler provisions one. `migrations_dir` is for
    `mayfly d1 migrations apply`."""

    binding: str
    database_id: str | None = None
    database_name: str | None = None
    migrations_dir: str = "migrations"
    migrations_table: str = "d1_migrations"


@dataclass(frozen=True)
class ServiceBinding:
    """A `[[services]]` entry: another Worker of the same account (`entrypoint`: a named export)."""

    binding: str
    service: str
    entrypoint: str | None = None


R2_BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class AssetsConfig:
    """The `[assets]` table. `directory` is absolute (the config names it relative to itself).
    `None` fields were not set and are left to the platform's defaults."""

    directory: Path
    binding: str | None = None
    html_handling: str | None = None
    not_found_handling: str | None = None
    run_worker_first: bool | tuple[str, ...] | None = None
    base_path: str | None = None


class Report(Protocol):
    def error(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


class ResourceChecker:
    def __init__(self, report: Report) -> None:
        self.report = report

    def kv_namespaces(self, value: Any) -> tuple[KVNamespace, ...]:
        out: list[KVNamespace] = []
        for index, item in enumerate(self._list("kv_namespaces", value, "{binding, id}")):
            where = f"`kv_namespaces[{index}]`"
            if not self._binding_table(where, item, "`binding` (and `id`)"):
                continue
            namespace_id = item.get("id")
            if namespace_id is not None and (not isinstance(namespace_id, str) or not namespace_id):
                self.report.error(f"{where}: `id` must be a namespace id (a string), or left out.")
                continue
            unknown = set(item) - {"binding", "id", "preview_id", "remote", "experimental_remote"}
            if unknown:
                self.report.warn(f"{where}: {', '.join(sorted(unknown))} ignored.")
            out.append(KVNamespace(item["binding"], namespace_id or None))
        return tuple(out)

    def _list(self, key: str, value: Any, shape: str) -> list[Any]:
        """The entries of a list of tables (`[[key]]`); none, reported, if it is not a list."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.report.error(f"`{key}` must be a list of {shape} tables ([[{key}]]).")
            return []
        return value

    def _binding_table(self, where: str, item: Any, shape: str) -> bool:
        """Whether the entry is a table with a valid `binding` (if not, it is reported)."""
        if not isinstance(item, dict):
            self.report.error(f"{where} must be a table with {shape}.")
            return False
        binding = item.get("binding")
        if not isinstance(binding, str) or not BINDING_NAME_RE.match(binding):
            self.report.error(f"{where}: `binding` {binding!r} must be a JavaScript identifier.")
            return False
        return True

    def _tables(self, key: str, value: Any, shape: str) -> list[tuple[str, dict[str, Any]]]:
        """(where, table) of each entry of a list of tables with a valid `binding`."""
        out = []
        for index, item in enumerate(self._list(key, value, shape)):
            where = f"`{key}[{index}]`"
            if self._binding_table(where, item, shape):
                out.append((where, item))
        return out

    def r2_buckets(self, value: Any) -> tuple[R2Bucket, ...]:
        out: list[R2Bucket] = []
        for where, item in self._tables("r2_buckets", value, "{binding, bucket_name}"):
            name = item.get("bucket_name")
            if not isinstance(name, str) or not R2_BUCKET_NAME_RE.match(name):
                self.report.error(
                    f"{where}: `bucket_name` {name!r} must be 3-63 lowercase letters, digits "
                    "and hyphens (a bucket without a name is not provisioned by Mayfly)."
                )
                continue
            if item.get("jurisdiction") not in (None, "", "default"):
                self.report.error(f"{where}: R2 jurisdictions are not supported by Mayfly.")
                continue
            unknown = set(item) - {"binding", "bucket_name", "preview_bucket_name", "jurisdiction"}
            unknown -= {"remote", "experimental_remote"}
            if unknown:
                self.report.warn(f"{where}: {', '.join(sorted(unknown))} ignored.")
            out.append(R2Bucket(item["binding"], name))
        return tuple(out)

    def d1_databases(self, value: Any) -> tuple[D1Database, ...]:
        out: list[D1Database] = []
        for where, item in self._tables("d1_databases", value, "{binding, database_id}"):
            fields: dict[str, str] = {}
            for key in ("database_id", "database_name", "migrations_dir", "migrations_table"):
                field_value = item.get(key)
                if field_value is None:
                    continue
                if not isinstance(field_value, str) or not field_value:
                    self.report.error(f"{where}: `{key}` must be a non-empty string.")
                    continue
                fields[key] = field_value
            unknown = set(item) - {"binding", "preview_database_id", "remote"}
            unknown -= {"experimental_remote", "migrations_pattern", *fields}
            unknown -= {"database_id", "database_name", "migrations_dir", "migrations_table"}
            if unknown:
                self.report.warn(f"{where}: {', '.join(sorted(unknown))} ignored.")
            out.append(D1Database(item["binding"], **fields))
        return tuple(out)

    def services(self, value: Any) -> tuple[ServiceBinding, ...]:
        out: list[ServiceBinding] = []
        for where, item in self._tables("services", value, "{binding, service}"):
            service, entrypoint = item.get("service"), item.get("entrypoint")
            if not isinstance(service, str) or not service:
                self.report.error(f"{where}: `service` must name a Worker of the same account.")
                continue
            if entrypoint is not None and (
                not isinstance(entrypoint, str) or not BINDING_NAME_RE.match(entrypoint)
            ):
                self.report.error(f"{where}: `entrypoint` must name an exported class.")
                continue
            if item.get("environment"):
                self.report.warn(f"{where}: `environment` ignored (Mayfly has one per Worker).")
            out.append(ServiceBinding(item["binding"], service, entrypoint))
        return tuple(out)

    def assets(self, value: Any, root: Path) -> AssetsConfig | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.report.error("`assets` must be a table with at least `directory`.")
            return None
        unknown = set(value) - ASSETS_KEYS
        if unknown:
            self.report.error(
                f"`assets` has unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                f"{', '.join(sorted(ASSETS_KEYS))}."
            )
        directory = value.get("directory")
        if not isinstance(directory, str) or not directory:
            self.report.error("`assets.directory` is missing: name the folder of static files.")
            return None
        binding = value.get("binding")
        if binding is not None and (
            not isinstance(binding, str) or not BINDING_NAME_RE.match(binding)
        ):
            self.report.error(f"`assets.binding` {binding!r} must be a JavaScript identifier.")
            binding = None
        return AssetsConfig(
            directory=Path(os.path.normpath((root / directory).absolute())),
            binding=binding,
            html_handling=self.choice("assets.html_handling", value, HTML_HANDLING),
            not_found_handling=self.choice("assets.not_found_handling", value, NOT_FOUND_HANDLING),
            run_worker_first=self.run_worker_first(value.get("run_worker_first")),
            base_path=self.base_path(value.get("base_path")),
        )

    def choice(self, key: str, table: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
        value = table.get(key.rsplit(".", 1)[1])
        if value is None:
            return None
        if value not in allowed:
            self.report.error(f"`{key}` must be one of {', '.join(allowed)}; got {value!r}.")
            return None
        return str(value)

    def run_worker_first(self, value: Any) -> bool | tuple[str, ...] | None:
        if value is None or isinstance(value, bool):
            return value
        if not isinstance(value, list) or not all(isinstance(rule, str) for rule in value):
            self.report.error(
                "`assets.run_worker_first` must be true, false or a list of path rules."
            )
            return None
        problems = [r for r in value if len(r) >= 100 or not r.startswith(("/", "!/"))]
        if problems or len(value) > 100:
            self.report.error(
                "`assets.run_worker_first` rules start with '/' (run the Worker) or '!/' (serve "
                "assets), are under 100 characters, and there are at most 100 of them."
            )
        elif not any(rule.startswith("/") for rule in value):
            self.report.error(
                "`assets.run_worker_first` has only negative ('!/') rules; add at least one "
                "path that should run the Worker first."
            )
        elif len(set(value)) != len(value):
            self.report.error("`assets.run_worker_first` lists a rule twice.")
        return tuple(value)

    def base_path(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith("/"):
            self.report.error("`assets.base_path` must be a path starting with '/'.")
            return None
        return value

    def assets_need_main(self, main: str | None, assets: AssetsConfig | None) -> None:
        """wrangler's rules for assets-only Workers (wrangler-assets.md §9)."""
        if assets is None:
            return
        if main is None:
            if assets.binding:
                self.report.error(
                    "`assets.binding` needs a Worker script: set `main`, or remove the binding "
                    "for an assets-only Worker."
                )
            if assets.run_worker_first:
                self.report.error(
                    "`assets.run_worker_first` needs a Worker script: set `main`, or remove it."
                )
        elif assets.run_worker_first is True and not assets.binding:
            self.report.warn(
                "`assets.run_worker_first = true` without `assets.binding`: the Worker runs for "
                "every request but cannot fetch the assets itself."
            )
