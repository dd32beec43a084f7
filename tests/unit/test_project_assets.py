"""The asset manifest: which files, their paths, wrangler's hash, content types, the config."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from blake3 import blake3

from mayfly.project import AssetsConfig, Project, ProjectError, asset_hash, build_manifest
from mayfly.project.assets import MAX_FILE_BYTES, content_type


def tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def project(directory: Path, **config: object) -> Project:
    return Project(
        root=directory.parent,
        config_path=None,
        name="site",
        main=None,
        assets=AssetsConfig(directory, **config),  # type: ignore[arg-type]
    )


def test_wrangler_s_hash() -> None:
    # The example of wrangler-assets.md §3.3, checked against blake3-wasm there.
    assert asset_hash(b"", "txt") == "f9bc91770fa5e997cbd47fba833629fc"
    data = b"same bytes\n"
    expected = blake3(base64.b64encode(data) + b"css").hexdigest()[:32]
    assert asset_hash(data, "css") == expected
    assert asset_hash(data, "css") != asset_hash(data, "txt")  # the extension is part of it


def test_which_files(tmp_path: Path) -> None:
    public = tree(
        tmp_path / "public",
        {
            "index.html": "<h1>hi</h1>",
            ".hidden": "dotfiles are assets",
            ".well-known/security.txt": "contact",
            "blog/post.html": "post",
            "drafts/wip.html": "not yet",
            "app.js.map": "{}",
            "secret.txt": "root only",
            "sub/secret.txt": "kept: the pattern is anchored",
            "sub/_headers": "nested metafiles are assets",
            "hello world.txt": "spaces stay raw",
            "ünïcødé.txt": "so does UTF-8",
            ".assetsignore": "*.map\ndrafts/\n/secret.txt\n",
            "_redirects": "/a /b 301\n",
            "_headers": "/*\n  X-Test: 1\n",
        },
    )
    os.symlink(public / "blog", public / "linked")
    os.symlink("..", public / "blog" / "loop")  # a link back to a parent is not followed forever
    manifest = build_manifest(project(public, html_handling="none"))
    assert manifest is not None
    assert [f.path for f in manifest.files] == [
        "/.hidden",
        "/.well-known/security.txt",
        "/blog/post.html",
        "/hello world.txt",
        "/index.html",
        "/linked/post.html",
        "/sub/_headers",
        "/sub/secret.txt",
        "/ünïcødé.txt",
    ]
    assert manifest.ignored == 3
    assert manifest.config == {
        "html_handling": "none",
        "_redirects": "/a /b 301\n",
        "_headers": "/*\n  X-Test: 1\n",
    }
    by_path = {f.path: f for f in manifest.files}
    assert by_path["/linked/post.html"].hash == by_path["/blog/post.html"].hash
    assert by_path["/index.html"].size == 11
    assert by_path["/index.html"].content_type == "text/html; charset=utf-8"
    assert by_path["/.hidden"].content_type == "application/null"
    assert manifest.manifest()["/index.html"] == {
        "hash": asset_hash(b"<h1>hi</h1>", "html"),
        "size": 11,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.json", "application/json"),
        ("a.png", "image/png"),
        ("a.woff2", "font/woff2"),
        ("a.svg", "image/svg+xml"),
        ("a.wasm", "application/wasm"),
        ("README", "application/null"),
        ("blob.xyz123", "application/null"),
    ],
)
def test_content_types_as_wrangler_sends_them(name: str, expected: str) -> None:
    assert content_type(name) == expected


def test_config_keys_only_when_set(tmp_path: Path) -> None:
    public = tree(tmp_path / "public", {"a.txt": "a"})
    manifest = build_manifest(project(public))
    assert manifest is not None and manifest.config == {}
    manifest = build_manifest(
        project(
            public,
            binding="ASSETS",
            not_found_handling="404-page",
            run_worker_first=True,
            base_path="/docs",
        )
    )
    assert manifest is not None
    assert manifest.binding == "ASSETS"
    assert manifest.config == {
        "not_found_handling": "404-page",
        "run_worker_first": True,
        "base_path": "/docs",
    }


def test_pages_worker_file_needs_an_assetsignore(tmp_path: Path) -> None:
    public = tree(tmp_path / "public", {"_worker.js": "export default {}"})
    with pytest.raises(ProjectError, match=r"_worker\.js"):
        build_manifest(project(public))
    (public / ".assetsignore").write_text("")
    manifest = build_manifest(project(public))
    assert manifest is not None and [f.path for f in manifest.files] == ["/_worker.js"]
    (public / ".assetsignore").write_text("_worker.js\n")
    manifest = build_manifest(project(public))
    assert manifest is not None and manifest.files == ()


def test_problems(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        build_manifest(project(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    with pytest.raises(ProjectError, match="not a directory"):
        build_manifest(project(tmp_path / "file"))
    public = tree(tmp_path / "public", {".assetsignore": b"a\x00b"})
    with pytest.raises(ProjectError, match="UTF-8 text without NUL"):
        build_manifest(project(public))
    (public / ".assetsignore").unlink()
    with (public / "big.bin").open("wb") as big:
        big.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ProjectError, match="Asset too large"):
        build_manifest(project(public))
    with (public / "big.bin").open("wb") as big:
        big.truncate(MAX_FILE_BYTES)  # exactly 25 MiB is allowed
    manifest = build_manifest(project(public))
    assert manifest is not None and manifest.files[0].size == MAX_FILE_BYTES


def test_no_assets_table() -> None:
    assert build_manifest(Project(root=Path("."), config_path=None, name="w", main="i.js")) is None
