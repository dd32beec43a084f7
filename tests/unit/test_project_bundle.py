"""Bundling with the pinned esbuild: when it runs, what it is given, what comes out, how it fails.

The npm package is written by hand under the temporary project's node_modules: no network."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mayfly.project import (
    BundleFailed,
    BundlerMissing,
    NeedsBundling,
    build_modules,
    bundle_with_esbuild,
    collect_modules,
    find_esbuild,
    load_project,
)
from mayfly.project.bundle import esbuild_args


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


TINY_PKG = {
    "node_modules/tiny-pkg/package.json": json.dumps(
        {"name": "tiny-pkg", "version": "1.0.0", "main": "index.js", "module": "index.mjs"}
    ),
    "node_modules/tiny-pkg/index.js": "module.exports.shout = (s) => s + ' (cjs)';\n",
    "node_modules/tiny-pkg/index.mjs": "export const shout = (s) => s.toUpperCase() + '!';\n",
}


def ts_project(root: Path, flags: str = "") -> Path:
    return tree(
        root,
        {
            "wrangler.toml": (
                f'name = "ts"\nmain = "src/index.ts"\ncompatibility_date = "2025-01-01"\n{flags}'
            ),
            "src/index.ts": (
                'import { shout } from "tiny-pkg";\n'
                'import { connect } from "cloudflare:sockets";\n'
                'import { Buffer } from "node:buffer";\n'
                "const label: string = process.env.NODE_ENV;\n"
                "export default {\n"
                "  fetch(): Response {\n"
                "    return new Response(shout(label) + typeof connect + Buffer.byteLength('x'));\n"
                "  },\n"
                "};\n"
            ),
            **TINY_PKG,
        },
    )


def test_typescript_with_an_npm_package(tmp_path: Path) -> None:
    project = load_project(ts_project(tmp_path))
    with pytest.raises(NeedsBundling):
        collect_modules(project)
    modules = build_modules(project)
    assert modules.bundler == "esbuild"
    assert modules.main == "index.js"
    assert modules.inputs == ("node_modules/tiny-pkg/index.mjs", "src/index.ts")
    code, source_map = modules.modules
    assert (code.name, code.content_type) == ("index.js", "application/javascript+module")
    assert (source_map.name, source_map.content_type) == ("index.js.map", "application/source-map")
    text = code.data.decode()
    assert "toUpperCase" in text  # the `module` field (ESM) won over `main`
    assert 'from "cloudflare:sockets"' in text and 'from "node:buffer"' in text  # left external
    assert '"production"' in text and "process.env" not in text
    assert ": string" not in text
    assert text.rstrip().endswith("//# sourceMappingURL=index.js.map")
    mapped = json.loads(source_map.data)
    # Sources are named relative to the project, not to esbuild's temporary output directory.
    assert mapped["sources"] == ["node_modules/tiny-pkg/index.mjs", "src/index.ts"]


def test_plain_relative_modules_are_not_bundled(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "wrangler.toml": 'name = "js"\nmain = "src/index.js"\n',
            "src/index.js": 'import { x } from "./x.js";\nimport "node:buffer";\nexport default {};\n',
            "src/x.js": "export const x = 1;\n",
        },
    )

    def refuse(project: object) -> object:
        raise AssertionError("esbuild must not run")

    modules = build_modules(load_project(tmp_path), refuse)  # type: ignore[arg-type]
    assert modules.bundler is None
    assert [m.name for m in modules.modules] == ["src/index.js", "src/x.js"]


def test_a_javascript_project_importing_a_package_is_bundled(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "wrangler.toml": 'name = "js"\nmain = "worker.mjs"\n',
            "worker.mjs": 'import { shout } from "tiny-pkg";\nexport default { x: shout("a") };\n',
            **TINY_PKG,
        },
    )
    modules = build_modules(load_project(tmp_path))
    assert modules.main == "worker.js" and modules.bundler == "esbuild"


def test_nodejs_compat_leaves_bare_builtins_to_the_runtime(tmp_path: Path) -> None:
    project_dir = ts_project(tmp_path, 'compatibility_flags = ["nodejs_compat"]\n')
    (project_dir / "src" / "index.ts").write_text(
        'import { EventEmitter } from "events";\nexport default { e: new EventEmitter() };\n'
    )
    text = bundle_with_esbuild(load_project(project_dir)).modules[0].data.decode()
    assert 'from "events"' in text
    # Without the flag, esbuild looks for an npm package called `events` and says so.
    (project_dir / "wrangler.toml").write_text('name = "ts"\nmain = "src/index.ts"\n')
    with pytest.raises(BundleFailed, match='Could not resolve "events"'):
        bundle_with_esbuild(load_project(project_dir))


def test_nodejs_compat_commonjs_requires_builtins_by_import(tmp_path: Path) -> None:
    """npm packages in CommonJS `require("crypto")`: esbuild's ES-module output has no require,
    so the bundle's first line imports each required built-in and answers require() with it."""
    project_dir = ts_project(tmp_path, 'compatibility_flags = ["nodejs_compat"]\n')
    tree(
        project_dir,
        {
            "src/index.ts": 'import legacy from "./legacy.cjs";\nexport default { legacy };\n',
            "src/legacy.cjs": (
                'const c = require("crypto");\nconst e = require("node:events");\n'
                'try { require("pg-native") } catch {}\nmodule.exports = { c, e };\n'
            ),
        },
    )
    bundle, source_map = bundle_with_esbuild(load_project(project_dir)).modules[:2]
    first, rest = bundle.data.decode().split("\n", 1)
    assert first.startswith('import * as __mayfly_node_0 from "node:crypto";')
    assert 'import * as __mayfly_node_1 from "node:events";' in first
    assert "const require=" in first and "pg-native" not in first
    assert "Dynamic require of" in rest  # esbuild's __require, which now finds `require`
    assert json.loads(source_map.data)["mappings"].startswith(";")  # shifted by the line
    # Without nodejs_compat, nothing is added.
    (project_dir / "wrangler.toml").write_text('name = "ts"\nmain = "src/index.ts"\n')
    (project_dir / "src" / "legacy.cjs").write_text('module.exports = require("node:crypto");\n')
    plain = bundle_with_esbuild(load_project(project_dir)).modules[0].data.decode()
    assert "__mayfly_node_" not in plain


def test_webassembly_imports_become_modules_named_as_wrangler_names_them(tmp_path: Path) -> None:
    project_dir = ts_project(tmp_path)
    tree(
        project_dir,
        {
            "src/index.ts": (
                'import a from "./lib/add.wasm";\nimport b from "../wasm/add.wasm?module";\n'
                "export default { a, b };\n"
            ),
        },
    )
    (project_dir / "src" / "lib").mkdir()
    (project_dir / "src" / "lib" / "add.wasm").write_bytes(b"\0asm\1\0\0\0")
    (project_dir / "wasm").mkdir()
    (project_dir / "wasm" / "add.wasm").write_bytes(b"\0asm\1\0\0\0\0\0")
    built = bundle_with_esbuild(load_project(project_dir))
    wasm = [m for m in built.modules if m.content_type == "application/wasm"]
    assert sorted(m.path.relative_to(project_dir).as_posix() for m in wasm) == [
        "src/lib/add.wasm",
        "wasm/add.wasm",
    ]
    code = built.modules[0].data.decode()
    for module in wasm:
        assert module.name.endswith("-add.wasm") and len(module.name) == 40 + len("-add.wasm")
        assert f'from "./{module.name}"' in code
    assert "?module" not in code


def test_esbuild_options() -> None:
    args = esbuild_args(Path("/p/src/index.ts"), Path("/t/index.js"), Path("/t/m.json"), ())
    for expected in (
        "--bundle",
        "--format=esm",
        "--platform=browser",
        "--target=es2022",
        "--conditions=workerd,worker,browser",
        "--external:cloudflare:*",
        "--external:node:*",
        "--sourcemap",
        "--outfile=/t/index.js",
    ):
        assert expected in args
    assert "--external:events" not in args
    assert "--external:events" in esbuild_args(
        Path("a.ts"), Path("b.js"), Path("m.json"), ("nodejs_compat",)
    )


def test_a_failed_build_shows_esbuild_s_message(tmp_path: Path) -> None:
    project_dir = ts_project(tmp_path)
    (project_dir / "src" / "index.ts").write_text("export default {\n")
    with pytest.raises(BundleFailed) as caught:
        bundle_with_esbuild(load_project(project_dir))
    assert caught.value.code == "bundle_failed"
    assert "esbuild could not bundle src/index.ts" in caught.value.message
    assert "[ERROR] Expected identifier but found end of file" in caught.value.message
    assert "src/index.ts:2:0" in caught.value.message


def test_finding_esbuild(tmp_path: Path) -> None:
    found = find_esbuild()
    assert found.is_file() and os.access(found, os.X_OK)
    fake = tmp_path / "esbuild"
    fake.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(BundlerMissing, match="not an executable file"):
        find_esbuild(environ={"MAYFLY_ESBUILD": str(fake)})
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert find_esbuild(environ={"MAYFLY_ESBUILD": str(fake)}) == fake


def test_missing_esbuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mayfly.project.bundle._candidates", lambda: [Path("no/such/esbuild")])
    with pytest.raises(BundlerMissing) as caught:
        find_esbuild(tmp_path, environ={})
    assert caught.value.code == "esbuild_missing"
    assert "npm ci" in caught.value.message and "MAYFLY_ESBUILD" in caught.value.message
