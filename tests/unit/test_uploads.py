import pytest

from mayfly.errors import ValidationError
from mayfly.model import ModuleUpload
from mayfly.services.workers.uploads import (
    DEFAULT_COMPATIBILITY_DATE,
    MAX_COMPATIBILITY_DATE,
    plan_upload,
)

JS = b"export default { fetch() { return new Response('x') } }"


def esm(name: str, data: bytes = JS) -> ModuleUpload:
    return ModuleUpload(name, "application/javascript+module", data)


def test_a_plain_upload_plans() -> None:
    plan = plan_upload(
        {"main_module": "index.js", "compatibility_date": "2025-01-01"},
        [
            esm("index.js"),
            esm("lib/util.js"),
            ModuleUpload("index.js.map", "application/source-map", b"{}"),
        ],
        1000,
    )
    assert [m.kind for m in plan.modules] == ["esm", "esm", "sourcemap"]
    assert plan.messages == []


@pytest.mark.parametrize(
    ("metadata", "parts", "needle"),
    [
        ({}, [esm("index.js")], "main_module"),
        ({"main_module": "other.js"}, [esm("index.js")], "no part"),
        ({"main_module": "index.js"}, [esm("index.js"), esm("index.js")], "twice"),
        ({"main_module": "../x.js"}, [esm("../x.js")], "'..'"),
        ({"main_module": "/abs.js"}, [esm("/abs.js")], "relative"),
        ({"main_module": "a//b.js"}, [esm("a//b.js")], "empty"),
        ({"main_module": "index.js", "compatibility_date": "yesterday"}, [esm("index.js")], "date"),
        (
            {"main_module": "index.js", "compatibility_date": "2025-02-30"},
            [esm("index.js")],
            "valid date",
        ),
        (
            {"main_module": "index.js", "compatibility_flags": ["experimental"]},
            [esm("index.js")],
            "not allowed",
        ),
        (
            {"main_module": "index.js", "bindings": [{"name": "X", "type": "queue"}]},
            [esm("index.js")],
            "does not support",
        ),
        (
            {"main_module": "index.js", "bindings": [{"name": "X", "type": "d1"}]},
            [esm("index.js")],
            "needs an `id`",
        ),
        (
            {
                "main_module": "index.js",
                "bindings": [{"name": "1X", "type": "plain_text", "text": "a"}],
            },
            [esm("index.js")],
            "identifier",
        ),
        (
            {
                "main_module": "index.js",
                "bindings": [
                    {"name": "A", "type": "plain_text", "text": "a"},
                    {"name": "A", "type": "plain_text", "text": "b"},
                ],
            },
            [esm("index.js")],
            "twice",
        ),
        (
            {"main_module": "data.bin"},
            [ModuleUpload("data.bin", "application/octet-stream", b"x")],
            "JavaScript",
        ),
        (
            {"main_module": "index.js"},
            [esm("index.js"), ModuleUpload("x.py", "text/x-python", b"")],
            "does not run Python Workers.*JavaScript or TypeScript",
        ),
        (
            {"main_module": "index.js"},
            [esm("index.js"), ModuleUpload("c.json", "application/json", b"{")],
            "JSON",
        ),
        ({"main_module": "index.js"}, [esm("index.js", b"\xff\xfe")], "UTF-8"),
        (
            {"main_module": "index.js"},
            [esm("index.js"), ModuleUpload("x", "image/png", b"")],
            "content type",
        ),
    ],
)
def test_bad_uploads_say_what_is_wrong(metadata: dict, parts: list, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        plan_upload(metadata, parts, 10_000)


def test_size_limit() -> None:
    with pytest.raises(ValidationError, match="limit"):
        plan_upload({"main_module": "index.js"}, [esm("index.js", b"x" * 101)], 100)


def test_dates_default_and_clamp_with_a_message() -> None:
    assert (
        plan_upload({"main_module": "i.js"}, [esm("i.js")], 1000).compatibility_date
        == DEFAULT_COMPATIBILITY_DATE
    )
    plan = plan_upload(
        {"main_module": "i.js", "compatibility_date": "2099-01-01"}, [esm("i.js")], 1000
    )
    assert plan.compatibility_date == MAX_COMPATIBILITY_DATE
    assert "newer" in plan.messages[0]


def test_untyped_parts_are_typed_by_name() -> None:
    plan = plan_upload(
        {"main_module": "worker"},
        [ModuleUpload("worker", "", JS), ModuleUpload("w.wasm", "", b"\0asm")],
        1000,
    )
    assert [m.kind for m in plan.modules] == ["esm", "wasm"]


def test_a_service_worker_script_is_the_main_module() -> None:
    """wrangler's service-worker format: metadata.body_part names the script, sent as CommonJS."""
    script = ModuleUpload("worker.js", "application/javascript", b"addEventListener('fetch', f)")
    plan = plan_upload({"body_part": "worker.js"}, [script], 1000)
    assert plan.main_module == "worker.js"
    assert [m.kind for m in plan.modules] == ["cjs"]


def test_dot_segments_are_dropped_from_module_names() -> None:
    """wrangler names the modules its bundle imports `./<sha1>-add.wasm` (module rules); the
    runtime resolves the bundle's `import "./<sha1>-add.wasm"` next to the main module."""
    wasm = ModuleUpload("./f2f4-add.wasm", "application/wasm", b"\0asm")
    plan = plan_upload({"main_module": "./index.js"}, [esm("index.js"), wasm], 1000)
    assert plan.main_module == "index.js"
    assert [m.name for m in plan.modules] == ["index.js", "f2f4-add.wasm"]
    with pytest.raises(ValidationError, match="twice"):
        plan_upload({"main_module": "index.js"}, [esm("index.js"), esm("./index.js")], 1000)
    with pytest.raises(ValidationError, match=r"'\.\.'"):
        plan_upload({"main_module": "index.js"}, [esm("index.js"), esm("./../x.js")], 1000)


@pytest.mark.parametrize(
    "name", ["cloudflare:workers", "node:fs", "cloudflare:sockets", "workerd:x"]
)
def test_a_module_cannot_take_a_builtin_specifier(name: str) -> None:
    """The Worker Loader would serve it to every import of that specifier, the prelude's too."""
    with pytest.raises(ValidationError, match="built-in"):
        plan_upload({"main_module": "index.js"}, [esm("index.js"), esm(name)], 1000)


def test_the_platforms_module_directory_is_reserved() -> None:
    for name in ("__mayfly__/capture.js", "./__mayfly__/prelude.js"):
        with pytest.raises(ValidationError, match="__mayfly__"):
            plan_upload({"main_module": "index.js"}, [esm("index.js"), esm(name)], 1000)
    with pytest.raises(ValidationError, match="__mayfly__"):
        plan_upload({"main_module": "__mayfly__/main.js"}, [esm("__mayfly__/main.js")], 1000)
