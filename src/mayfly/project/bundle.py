"""Bundling with esbuild, for what cannot be uploaded module by module: TypeScript, JSX, npm packages.

`build_modules` uploads plain relative-ESM projects as they are (collect_modules) and runs esbuild
only when that raises NeedsBundling. The bundle is one ES module named after the entry (`src/index.ts`
→ `index.js`) plus its source map (`index.js.map`, uploaded as `application/source-map`), built
with wrangler's options: browser platform, conditions workerd/worker/browser, `cloudflare:*` and
`node:*` left to the runtime (with nodejs_compat, Node's built-ins under their bare names too),
`process.env.NODE_ENV` = "production", names kept. WebAssembly imports (`./x.wasm`,
`./x.wasm?module`) stay imports, as wrangler's module rules leave them: each file is uploaded as a
module of its own named `<sha1>-<file name>`, wrangler's name for it.

esbuild is the pinned npm package (package.json): `$MAYFLY_ESBUILD`, else the platform binary under
node_modules above this package (the checkout) or in the project or working directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from mayfly.project.config import Project
from mayfly.project.errors import Diagnostic, ProjectError
from mayfly.project.modules import (
    ESM,
    NODE_BUILTINS,
    Collector,
    ModuleSet,
    NeedsBundling,
    SourceModule,
    collect_modules,
)

ENV_VAR = "MAYFLY_ESBUILD"
SOURCE_MAP = "application/source-map"
TARGET = "es2022"
CONDITIONS = ("workerd", "worker", "browser")
WASM = "application/wasm"
WASM_EXTERNALS = ("*.wasm", "*.wasm?module")
TIMEOUT = 120.0

_PLATFORMS = {
    ("Linux", "x86_64"): "linux-x64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "arm64"): "darwin-arm64",
    ("Darwin", "x86_64"): "darwin-x64",
}


class BundlerMissing(ProjectError):
    code = "esbuild_missing"


class BundleFailed(ProjectError):
    code = "bundle_failed"


def _candidates() -> list[Path]:
    relative = [Path("node_modules") / "esbuild" / "bin" / "esbuild"]
    package = _PLATFORMS.get((platform.system(), platform.machine()))
    if package is not None:
        relative.insert(0, Path("node_modules") / "@esbuild" / package / "bin" / "esbuild")
    return relative


def find_esbuild(
    project_root: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The esbuild binary; raises BundlerMissing saying how to get one."""
    env = os.environ if environ is None else environ
    chosen = env.get(ENV_VAR)
    if chosen:
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BundlerMissing.single(f"{ENV_VAR} is {chosen}, which is not an executable file.")
        return path
    # The pinned one first (above this package, as the runtime finds workerd), then the project's.
    roots = [*Path(__file__).resolve().parents]
    for extra in (project_root, Path.cwd()):
        if extra is not None:
            roots.extend([extra, *extra.parents])
    relatives = _candidates()
    for root in dict.fromkeys(roots):
        for relative in relatives:
            candidate = root / relative
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    raise BundlerMissing.single(
        "This project needs bundling (TypeScript, JSX or npm packages) and esbuild was not found "
        f"({relatives[0]} above the mayfly package, in the project or the working directory). "
        f"Run `npm ci` in the Mayfly checkout, `npm install esbuild` in the project, or set "
        f"{ENV_VAR} to an esbuild binary."
    )


def esbuild_args(entry: Path, outfile: Path, metafile: Path, flags: Sequence[str]) -> list[str]:
    externals = ["cloudflare:*", "node:*", "workerd:*", *WASM_EXTERNALS]
    if any(flag.startswith("nodejs_compat") for flag in flags):
        # With nodejs_compat the runtime provides the built-ins under their bare names too.
        externals += [
            name for builtin in sorted(NODE_BUILTINS) for name in (builtin, builtin + "/*")
        ]
    return [
        str(entry),
        "--bundle",
        "--format=esm",
        "--platform=browser",
        f"--target={TARGET}",
        f"--conditions={','.join(CONDITIONS)}",
        *(f"--external:{name}" for name in externals),
        "--sourcemap",
        "--keep-names",
        '--define:process.env.NODE_ENV="production"',
        '--define:global.process.env.NODE_ENV="production"',
        '--define:globalThis.process.env.NODE_ENV="production"',
        # wrangler's loaders: JSX is allowed in .js files; text modules are inlined.
        "--loader:.js=jsx",
        "--loader:.mjs=jsx",
        "--loader:.cjs=jsx",
        "--loader:.txt=text",
        "--loader:.html=text",
        "--loader:.sql=text",
        "--loader:.bin=binary",
        f"--outfile={outfile}",
        f"--metafile={metafile}",
        "--log-level=warning",
        "--color=false",
    ]


def bundle_with_esbuild(
    project: Project, *, esbuild: Path | None = None, timeout: float = TIMEOUT
) -> ModuleSet:
    """Bundle `project.main` into one ES module and its source map."""
    if project.main is None:
        raise ProjectError.single("The project has no `main` module to bundle.")
    root = project.root.resolve()
    entry = root / project.main
    if not entry.is_file():
        raise ProjectError.single(f"`main` is {project.main}, but {entry} does not exist.")
    binary = esbuild or find_esbuild(root)
    name = PurePosixPath(project.main).stem + ".js"
    with tempfile.TemporaryDirectory(prefix="mayfly-bundle-") as tmp:
        outfile, metafile = Path(tmp) / name, Path(tmp) / "meta.json"
        args = esbuild_args(entry, outfile, metafile, project.compatibility_flags)
        try:
            done = subprocess.run(
                [str(binary), *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except OSError as exc:
            raise BundlerMissing.single(f"esbuild ({binary}) could not be started: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise BundleFailed.single(
                f"esbuild did not finish bundling {project.main} within {timeout:.0f} s."
            ) from exc
        message = done.stderr.strip()
        if done.returncode != 0:
            raise BundleFailed.single(
                f"esbuild could not bundle {project.main}:\n{message or done.stdout.strip()}"
            )
        meta = json.loads(metafile.read_text())
        inputs = tuple(sorted(meta.get("inputs", {})))
        banner = b""
        if any(flag.startswith("nodejs_compat") for flag in project.compatibility_flags):
            banner = _require_builtins(meta)
        code = banner + outfile.read_bytes()
        source_map = _relative_sources(
            Path(tmp), root, outfile.with_name(name + ".map"), banner.count(b"\n")
        )
    code, wasm = _wasm_modules(root, meta, code)
    warnings = (Diagnostic("warning", f"esbuild: {message}"),) if message else ()
    return ModuleSet(
        main=name,
        modules=(
            SourceModule(name=name, path=entry, content_type=ESM, data=code),
            SourceModule(name=name + ".map", path=entry, content_type=SOURCE_MAP, data=source_map),
            *wasm,
        ),
        diagnostics=warnings,
        bundler="esbuild",
        inputs=inputs,
    )


def _wasm_modules(
    root: Path, meta: dict[str, Any], code: bytes
) -> tuple[bytes, list[SourceModule]]:
    """The WebAssembly files the bundle imports (esbuild left them external), each as a module
    named `<sha1>-<file name>` (as wrangler names it), and the bundle with its imports renamed."""
    files: dict[str, Path] = {}
    inputs = meta.get("inputs")
    for importer, info in inputs.items() if isinstance(inputs, dict) else ():
        for imported in info.get("imports", ()) if isinstance(info, dict) else ():
            spec = imported.get("path", "")
            if not imported.get("external") or not spec.removesuffix("?module").endswith(".wasm"):
                continue
            if not spec.startswith(("./", "../")):
                raise BundleFailed.single(
                    f"{importer} imports {spec!r}: import a WebAssembly module by a relative path."
                )
            path = Path(os.path.normpath(root / importer)).parent / spec.removesuffix("?module")
            path = Path(os.path.normpath(path))
            if files.setdefault(spec, path) != path:
                raise BundleFailed.single(
                    f"Two modules import {spec!r} and mean different files ({files[spec]}, "
                    f"{path}); give the WebAssembly files different names."
                )
    modules: list[SourceModule] = []
    for spec, path in sorted(files.items()):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BundleFailed.single(
                f"{path} (imported as {spec!r}) cannot be read: {exc}"
            ) from exc
        module = f"{hashlib.sha1(data, usedforsecurity=False).hexdigest()}-{path.name}"
        pattern = rb'(\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)"' + re.escape(spec.encode()) + rb'"'
        quoted = b'"./' + module.encode() + b'"'
        code, count = re.subn(pattern, rb"\g<1>" + quoted.replace(b"\\", b"\\\\"), code)
        if count and all(m.name != module for m in modules):
            modules.append(SourceModule(name=module, path=path, content_type=WASM, data=data))
    return code, modules


def _require_builtins(meta: dict[str, Any]) -> bytes:
    """A first line for the bundle that gives its CommonJS code a `require` of the Node built-ins
    it requires (`require("crypto")` in jsonwebtoken, pg, …): an ES module has no `require`, so
    esbuild's `__require` would throw "Dynamic require of "crypto" is not supported". Like
    wrangler's, it imports each one and answers its default export; any other name throws."""
    required = sorted(
        {
            str(imported.get("path", ""))
            for output in meta.get("outputs", {}).values()
            for imported in output.get("imports", ())
            if imported.get("kind") == "require-call"
            and imported.get("external")
            and str(imported.get("path", "")).removeprefix("node:") in NODE_BUILTINS
        }
    )
    if not required:
        return b""
    imports = "".join(
        f'import * as __mayfly_node_{i} from "node:{spec.removeprefix("node:")}";'
        for i, spec in enumerate(required)
    )
    table = ",".join(f"{json.dumps(spec)}:__mayfly_node_{i}" for i, spec in enumerate(required))
    function = (
        "const require=((m)=>(n)=>{const x=Object.hasOwn(m,n)?m[n]:undefined;"
        "if(x===undefined)throw new Error('Dynamic require of \"'+n+'\" is not supported');"
        "return x.default??x;})({" + table + "});"
    )
    return (imports + function + "\n").encode()


def _relative_sources(outdir: Path, root: Path, map_path: Path, shift: int = 0) -> bytes:
    """esbuild names sources relative to the (temporary) output directory; name them relative
    to the project instead, so stack traces point at the files on disk (`shift`: lines put
    before esbuild's output)."""
    data = json.loads(map_path.read_text())
    data["mappings"] = ";" * shift + data["mappings"]
    data["sources"] = [
        os.path.relpath(os.path.normpath(outdir / source), root) for source in data["sources"]
    ]
    return json.dumps(data, separators=(",", ":")).encode()


def build_modules(project: Project, bundler: Collector | None = None) -> ModuleSet:
    """The modules to upload: as they are on disk, or bundled when they need it."""
    try:
        return collect_modules(project)
    except NeedsBundling:
        return (bundler or bundle_with_esbuild)(project)
