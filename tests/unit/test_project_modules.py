"""The module graph: every module reachable from `main`, named relative to the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayfly.project import ProjectError, collect_modules, load_project
from mayfly.project.imports import scan_imports


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(root: Path, main: str = "src/index.js") -> list[str]:
    project = load_project(root, name="t", main=main)
    return [m.name for m in collect_modules(project).modules]


def test_static_imports_export_from_and_literal_dynamic_imports(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "src/index.js": (
                'import { greet } from "./lib/greet.js";\n'
                "export { shout } from './lib/shout.js';\n"
                "export * from './lib/all.js';\n"
                "const later = () => import(`./lazy.js`);\n"
                'import "./side-effect.mjs";\n'
            ),
            "src/lib/greet.js": 'import data from "../../data/words.json" with { type: "json" };\n',
            "src/lib/shout.js": "export const shout = (s) => s.toUpperCase();\n",
            "src/lib/all.js": "import wasm from './add.wasm'; import t from './t.txt';\n",
            "src/lib/add.wasm": "\0asm",
            "src/lib/t.txt": "text",
            "src/lazy.js": "import { greet } from './lib/greet.js';\n",  # a cycle back into lib
            "src/side-effect.mjs": "",
            "data/words.json": "{}",
            "src/unused.js": "",
        },
    )
    project = load_project(tmp_path, name="t", main="src/index.js")
    modules = collect_modules(project)
    assert modules.main == "src/index.js"
    assert [m.name for m in modules.modules] == [
        "src/index.js",  # the main module first, then by name
        "data/words.json",
        "src/lazy.js",
        "src/lib/add.wasm",
        "src/lib/all.js",
        "src/lib/greet.js",
        "src/lib/shout.js",
        "src/lib/t.txt",
        "src/side-effect.mjs",
    ]
    types = {m.name: m.content_type for m in modules.modules}
    assert types["src/index.js"] == "application/javascript+module"
    assert types["data/words.json"] == "application/json"
    assert types["src/lib/add.wasm"] == "application/wasm"
    assert types["src/lib/t.txt"] == "text/plain"


def test_parent_directory_inside_the_project_is_fine(tmp_path: Path) -> None:
    tree(tmp_path, {"src/index.js": "import '../lib/x.js';", "lib/x.js": ""})
    assert names(tmp_path) == ["src/index.js", "lib/x.js"]


def test_escaping_the_project_names_the_module(tmp_path: Path) -> None:
    project = tmp_path / "project"
    tree(tmp_path, {"outside.js": ""})
    tree(project, {"src/index.js": "\n\nimport x from '../../outside.js';"})
    with pytest.raises(ProjectError) as caught:
        names(project)
    message = caught.value.message
    assert "src/index.js:3" in message
    assert "'../../outside.js'" in message
    assert str(tmp_path / "outside.js") in message
    assert "outside the project" in message


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    tree(tmp_path, {"secret.js": ""})
    tree(project, {"src/index.js": "import './link.js';"})
    (project / "src" / "link.js").symlink_to(tmp_path / "secret.js")
    with pytest.raises(ProjectError, match=r"link to .*secret\.js, outside the project"):
        names(project)


def test_missing_module_is_an_error_with_a_hint(tmp_path: Path) -> None:
    tree(tmp_path, {"src/index.js": "import { x } from './lib/util';", "src/lib/util.js": ""})
    with pytest.raises(ProjectError) as caught:
        names(tmp_path)
    assert "src/index.js:1 imports './lib/util', but src/lib/util does not exist" in str(
        caught.value
    )
    assert "Did you mean './lib/util.js'?" in str(caught.value)


def test_missing_main(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        names(tmp_path, main="src/nope.js")


def test_a_python_worker_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    """C3's Python templates (main = "src/entry.py")."""
    tree(tmp_path, {"src/entry.py": "from workers import Response\n"})
    with pytest.raises(
        ProjectError, match=r"does not run Python Workers.*JavaScript or TypeScript"
    ):
        names(tmp_path, main="src/entry.py")


def test_packages_need_a_bundler_but_runtime_modules_do_not(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "src/index.js": (
                "import { connect } from 'cloudflare:sockets';\n"
                "import { Buffer } from 'node:buffer';\n"
                "import assert from 'assert';\n"
            )
        },
    )
    assert names(tmp_path) == ["src/index.js"]
    (tmp_path / "src/index.js").write_text("import _ from 'lodash';")
    with pytest.raises(ProjectError, match="package 'lodash'; npm packages need bundling"):
        names(tmp_path)


def test_typescript_needs_a_bundler(tmp_path: Path) -> None:
    tree(tmp_path, {"src/index.ts": "", "src/index.js": "import './x.ts';", "src/x.ts": ""})
    with pytest.raises(ProjectError, match="TypeScript"):
        names(tmp_path, main="src/index.ts")
    with pytest.raises(ProjectError, match="TypeScript"):
        names(tmp_path)


def test_computed_dynamic_import_is_a_warning(tmp_path: Path) -> None:
    tree(tmp_path, {"src/index.js": "const m = await import('./' + name);"})
    modules = collect_modules(load_project(tmp_path, name="t", main="src/index.js"))
    assert [d.message for d in modules.diagnostics] == [
        "src/index.js:1: import() of a computed name cannot be followed; "
        "the module it loads is uploaded only if something imports it literally."
    ]


def test_commonjs_require(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "src/index.js": "import x from './a.cjs';",
            "src/a.cjs": "require('./b.cjs')",
            "src/b.cjs": "",
        },
    )
    assert names(tmp_path) == ["src/index.js", "src/a.cjs", "src/b.cjs"]


# -- the scanner on its own ------------------------------------------------------------------


def specifiers(source: str) -> list[str]:
    return [ref.specifier for ref in scan_imports(source).imports]


def test_import_forms() -> None:
    assert specifiers(
        'import a from "./a.js"\n'
        "import {b as c, d} from './b.js'\n"
        'import * as ns from "./ns.js"\n'
        'import def, {x} from "./mixed.js"\n'
        'export { y } from "./re.js"\n'
        'export * as star from "./star.js"\n'
        "export {\n  multi,\n  line,\n} from './multiline.js'\n"
    ) == ["./a.js", "./b.js", "./ns.js", "./mixed.js", "./re.js", "./star.js", "./multiline.js"]


def test_imports_in_comments_strings_templates_and_regexes_are_ignored() -> None:
    source = (
        "// import a from './comment.js'\n"
        "/* import b from './block.js' */\n"
        "const s = \"import c from './string.js'\";\n"
        "const t = `import d from './template.js' ${ await import('./inside.js') } tail`;\n"
        "const r = /import e from '.\\/regex.js'/g;\n"
        "const q = a / b / c; import('./after-division.js');\n"
        "const o = loader.import('./method.js');\n"
        "console.log(import.meta.url);\n"
        "export const z = 1;\n"
        "export { local };\n"
    )
    assert specifiers(source) == ["./inside.js", "./after-division.js"]


def test_dynamic_import_kinds_and_lines() -> None:
    result = scan_imports("\nimport('./a.js');\nimport(`./b.js`, { with: {} });\nimport(name);\n")
    assert [(r.specifier, r.kind, r.line) for r in result.imports] == [
        ("./a.js", "dynamic", 2),
        ("./b.js", "dynamic", 3),
    ]
    assert result.unresolved_dynamic == (4,)
    assert scan_imports("import(`./${name}.js`)").unresolved_dynamic == (1,)


def test_regex_after_keyword_and_division_after_parenthesis() -> None:
    source = "function f(x) { return /['\"]/.test(x) }\nconst y = (a) / 2; import './ok.js';"
    assert specifiers(source) == ["./ok.js"]


def test_the_hello_example() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hello"
    project = load_project(example)
    assert (project.name, project.main, project.compatibility_date) == (
        "hello",
        "src/index.js",
        "2025-01-01",
    )
    assert project.vars == {"GREETING": "Hello"}
    assert [m.name for m in collect_modules(project).modules] == [
        "src/index.js",
        "src/lib/greet.js",
    ]
