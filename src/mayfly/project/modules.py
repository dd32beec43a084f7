"""The modules to upload: everything reachable from `main` through relative imports.

Modules are named by their path relative to the project root, so workerd resolves `./x.js` and
`../lib/y.js` exactly as the files on disk do. A module outside the project, a missing one, or a
bare package name is an error that names it.

A deploy asks for a `ModuleSet`; `collect_modules` builds one from the files as they are, and
raises `NeedsBundling` for TypeScript/JSX or an npm package import. The esbuild bundler
(bundle.py) is another `Collector` returning the same shape.
"""

from __future__ import annotations

import os.path
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from mayfly.project.config import Project
from mayfly.project.errors import Diagnostic, ProjectError
from mayfly.project.imports import ImportRef, scan_imports

ESM = "application/javascript+module"
CJS = "application/javascript"
# Module types by extension, as wrangler's default module rules have them.
CONTENT_TYPES = {
    ".js": ESM,
    ".mjs": ESM,
    ".cjs": CJS,
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".txt": "text/plain",
    ".html": "text/plain",
    ".sql": "text/plain",
    ".bin": "application/octet-stream",
}
NEEDS_BUNDLER = (".ts", ".mts", ".cts", ".tsx", ".jsx")
RUNTIME_PREFIXES = ("node:", "cloudflare:", "workerd:")
# Node's built-in modules (module.builtinModules, Node 22): with nodejs_compat and a recent
# compatibility date workerd serves every one of them, under its bare name too.
NODE_BUILTINS = frozenset(
    [
        "assert",
        "assert/strict",
        "async_hooks",
        "buffer",
        "child_process",
        "cluster",
        "console",
        "constants",
        "crypto",
        "dgram",
        "diagnostics_channel",
        "dns",
        "dns/promises",
        "domain",
        "events",
        "fs",
        "fs/promises",
        "http",
        "http2",
        "https",
        "inspector",
        "inspector/promises",
        "module",
        "net",
        "os",
        "path",
        "path/posix",
        "path/win32",
        "perf_hooks",
        "process",
        "punycode",
        "querystring",
        "readline",
        "readline/promises",
        "repl",
        "stream",
        "stream/consumers",
        "stream/promises",
        "stream/web",
        "string_decoder",
        "sys",
        "timers",
        "timers/promises",
        "tls",
        "trace_events",
        "tty",
        "url",
        "util",
        "util/types",
        "v8",
        "vm",
        "wasi",
        "worker_threads",
        "zlib",
    ]
)
MAX_MODULES = 1000
PYTHON_REFUSAL = (
    "Mayfly does not run Python Workers (python_workers); write the Worker in JavaScript or "
    "TypeScript (an ES module exporting a fetch handler)."
)


@dataclass(frozen=True)
class SourceModule:
    """One module of the upload: `name` is its path relative to the project root."""

    name: str
    path: Path
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ModuleSet:
    main: str
    modules: tuple[SourceModule, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    # Set when a bundler produced the modules: its name and the source files that went in.
    bundler: str | None = None
    inputs: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(len(m.data) for m in self.modules)


class Collector(Protocol):
    def __call__(self, project: Project) -> ModuleSet: ...


class NeedsBundling(ProjectError):
    """The modules cannot be uploaded as they are: TypeScript, JSX or an npm package."""


def collect_modules(project: Project) -> ModuleSet:
    """Walk the import graph from `project.main`; raise ProjectError naming the first problem
    (NeedsBundling when a bundler could fix it)."""
    root = project.root.resolve()
    if project.main is None:
        raise ProjectError.single("The project has no `main` module to upload.")
    main = _check_main(root, project.main)
    seen: dict[str, SourceModule] = {}
    warnings: list[Diagnostic] = []
    pending = [main]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        if len(seen) >= MAX_MODULES:
            raise ProjectError.single(
                f"More than {MAX_MODULES} modules are reachable from {project.main}."
            )
        module = _read(root, name)
        seen[name] = module
        if module.content_type not in (ESM, CJS):
            continue
        try:
            source = module.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProjectError.single(f"{name} is not UTF-8 text.") from exc
        scan = scan_imports(source, commonjs=module.content_type == CJS)
        for line in scan.unresolved_dynamic:
            warnings.append(
                Diagnostic(
                    "warning",
                    f"{name}:{line}: import() of a computed name cannot be followed; "
                    "the module it loads is uploaded only if something imports it literally.",
                )
            )
        pending.extend(_targets(root, name, scan.imports))
    ordered = [seen[main], *(seen[n] for n in sorted(seen) if n != main)]
    return ModuleSet(main=main, modules=tuple(ordered), diagnostics=tuple(warnings))


def _check_main(root: Path, main: str) -> str:
    suffix = PurePosixPath(main).suffix
    if suffix in NEEDS_BUNDLER:
        raise NeedsBundling.single(f"`main` is {main}: TypeScript and JSX need bundling.")
    if suffix == ".py":
        raise ProjectError.single(f"`main` is {main}: {PYTHON_REFUSAL}")
    if CONTENT_TYPES.get(suffix) not in (ESM, CJS):
        raise ProjectError.single(f"`main` is {main}: the entry module must be a .js or .mjs file.")
    if not (root / main).is_file():
        raise ProjectError.single(f"`main` is {main}, but {root / main} does not exist.")
    if not (root / main).resolve().is_relative_to(root):
        raise ProjectError.single(f"`main` is {main}, a link to a file outside the project {root}.")
    return main


def _targets(root: Path, importer: str, refs: Iterable[ImportRef]) -> list[str]:
    out = []
    for ref in refs:
        where = f"{importer}:{ref.line}"
        spec = ref.specifier
        if spec.startswith(RUNTIME_PREFIXES) or spec in NODE_BUILTINS:
            continue
        if spec.startswith("/") or "://" in spec:
            raise ProjectError.single(
                f"{where} imports {spec!r}: use a relative path (./ or ../) inside the project."
            )
        if not spec.startswith(("./", "../")):
            raise NeedsBundling.single(
                f"{where} imports the package {spec!r}; npm packages need bundling."
            )
        if "?" in spec or "#" in spec:
            raise ProjectError.single(
                f"{where} imports {spec!r}: query strings and fragments are not supported."
            )
        out.append(_resolve(root, importer, spec, where))
    return out


def _resolve(root: Path, importer: str, spec: str, where: str) -> str:
    joined = os.path.normpath(os.path.join(os.path.dirname(importer), spec))
    if joined == ".." or joined.startswith("../") or os.path.isabs(joined):
        outside = os.path.normpath(root / os.path.dirname(importer) / spec)
        raise ProjectError.single(
            f"{where} imports {spec!r}, which is {outside}: outside the project directory "
            f"{root}. Modules must live inside the project."
        )
    name = PurePosixPath(joined).as_posix()
    path = root / name
    if not path.is_file():
        hint = ""
        for extra in (".js", ".mjs", "/index.js"):
            if (root / (name + extra)).is_file():
                hint = f" Did you mean {spec + extra!r}? Module names are matched exactly."
                break
        raise ProjectError.single(f"{where} imports {spec!r}, but {name} does not exist.{hint}")
    real = path.resolve()
    if not real.is_relative_to(root):
        raise ProjectError.single(
            f"{where} imports {spec!r}: {name} is a link to {real}, outside the project "
            f"directory {root}."
        )
    return name


def _read(root: Path, name: str) -> SourceModule:
    path = root / name
    suffix = PurePosixPath(name).suffix
    if suffix in NEEDS_BUNDLER:
        raise NeedsBundling.single(f"{name}: TypeScript and JSX need bundling.")
    content_type = CONTENT_TYPES.get(suffix)
    if content_type is None:
        raise ProjectError.single(
            f"{name}: unknown module type {suffix or '(no extension)'}; "
            f"supported: {', '.join(sorted(CONTENT_TYPES))}."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProjectError.single(f"{name} cannot be read: {exc}") from exc
    return SourceModule(name=name, path=path, content_type=content_type, data=data)
