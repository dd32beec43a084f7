"""`mayfly deploy` of projects that need more than their modules: static assets, TypeScript and npm
packages (bundled with the pinned esbuild), assets-only Workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mayfly.api.internal import SECRET_HEADER
from mayfly.app import Platform
from tests.unit.cli_support import Mayfly, app_transport


@pytest.fixture
def transport(platform: Platform) -> Iterator[httpx.MockTransport]:
    with app_transport(platform.public_app()) as t:
        yield t


@pytest.fixture
def mayfly(transport: httpx.MockTransport, tmp_path: Path) -> Mayfly:
    return Mayfly(transport, tmp_path / "home")


def files(root: Path, tree: dict[str, str | bytes]) -> Path:
    for name, content in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def version(platform: Platform, version_id: str) -> dict[str, Any]:
    with TestClient(platform.internal_app()) as internal:
        payload: dict[str, Any] = internal.get(
            f"/internal/v1/versions/{version_id}",
            headers={SECRET_HEADER: platform.internal_secret},
        ).json()
        return payload


SITE = {
    "wrangler.toml": (
        'name = "site"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n'
        '[assets]\ndirectory = "public"\nbinding = "ASSETS"\n'
        'not_found_handling = "404-page"\nrun_worker_first = ["/api/*"]\n'
    ),
    "src/index.js": "export default { fetch(r, env) { return env.ASSETS.fetch(r); } };\n",
    "public/index.html": "<h1>home</h1>\n",
    "public/about.html": "<h1>about</h1>\n",
    "public/copy.html": "<h1>about</h1>\n",  # same bytes and extension: one hash
    "public/css/site.css": "body{}\n",
    "public/drafts/wip.html": "secret plans\n",
    "public/.assetsignore": "drafts/\n",
    "public/_headers": "/*\n  X-Frame-Options: DENY\n",
    "public/_redirects": "/old /about 301\n",
}


def test_assets_are_uploaded_once(
    mayfly: Mayfly, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = files(tmp_path / "site", SITE)
    monkeypatch.chdir(project)
    result = mayfly("deploy", "--temporary", "--json")
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    # 4 files (drafts/ ignored), two of which share a hash: 3 uploads, and the 4th counts as
    # already there, as in wrangler.
    assert first["assets"] == {"files": 4, "uploaded": 3, "already_uploaded": 1}
    assert "Uploading 3 new or changed assets (1 already uploaded)… done" in result.stderr
    payload = version(platform, first["version_id"])
    assert payload["assets_binding"] == "ASSETS"
    assert sorted(payload["assets"]["manifest"]) == [
        "/about.html",
        "/copy.html",
        "/css/site.css",
        "/index.html",
    ]
    config = payload["assets"]["config"]
    assert config["not_found_handling"] == "404-page"
    assert config["run_worker_first"] == ["/api/*"]
    assert config["_headers"].startswith("/*")
    assert config["_redirects"] == "/old /about 301\n"
    manifest = payload["assets"]["manifest"]
    assert manifest["/css/site.css"]["content_type"] == "text/css; charset=utf-8"

    again = mayfly.ok("deploy")
    assert again["assets"] == {"files": 4, "uploaded": 0, "already_uploaded": 4}
    (project / "public" / "index.html").write_text("<h1>home, changed</h1>\n")
    changed = mayfly.ok("deploy")
    assert changed["assets"] == {"files": 4, "uploaded": 1, "already_uploaded": 3}
    text = mayfly("deploy")
    assert "Assets" in text.stdout and "0 uploaded, 4 already there" in text.stdout


def test_assets_only_worker(
    mayfly: Mayfly, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = files(
        tmp_path / "static",
        {
            "wrangler.jsonc": '{"name": "static", "compatibility_date": "2025-01-01", '
            '"assets": {"directory": "./dist"}}',
            "dist/index.html": "<p>static</p>",
        },
    )
    monkeypatch.chdir(project)
    deployed = mayfly.ok("deploy", "--temporary")
    payload = version(platform, deployed["version_id"])
    assert payload["has_worker"] is False and payload["modules"] == []
    assert list(payload["assets"]["manifest"]) == ["/index.html"]


def test_assets_problems_fail_before_anything_is_provisioned(
    mayfly: Mayfly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = files(
        tmp_path / "broken",
        {
            "wrangler.toml": 'name = "b"\nmain = "index.js"\n[assets]\ndirectory = "nope"\n',
            "index.js": "export default {};",
        },
    )
    monkeypatch.chdir(project)
    code, body = mayfly.json("deploy", "--temporary")
    assert code == 1 and body["error"]["code"] == "project_invalid"
    assert "does not exist" in body["error"]["message"]
    assert not mayfly.cache_file.exists()
    files(project, {"nope/_worker.js": "export default {}"})
    code, body = mayfly.json("deploy", "--temporary")
    assert code == 1 and "_worker.js" in body["error"]["message"]


def typescript_project(root: Path) -> Path:
    return files(
        root,
        {
            "wrangler.toml": 'name = "ts"\nmain = "src/index.ts"\ncompatibility_date = "2025-01-01"\n',
            "src/index.ts": (
                'import { shout } from "tiny-pkg";\n'
                'import { suffix } from "./suffix";\n'
                "interface Env { GREETING: string }\n"
                "export default {\n"
                "  async fetch(request: Request, env: Env): Promise<Response> {\n"
                '    return new Response(shout("hello") + suffix);\n'
                "  },\n"
                "};\n"
            ),
            "src/suffix.ts": 'export const suffix: string = " from ts";\n',
            "node_modules/tiny-pkg/package.json": (
                '{"name": "tiny-pkg", "version": "1.0.0", "type": "module", '
                '"exports": {"workerd": "./worker.js", "default": "./index.js"}}'
            ),
            "node_modules/tiny-pkg/index.js": "export const shout = (s) => s + ' (node)';\n",
            "node_modules/tiny-pkg/worker.js": "export const shout = (s) => s.toUpperCase() + '!';\n",
        },
    )


def test_typescript_and_an_npm_package_are_bundled(
    mayfly: Mayfly, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(typescript_project(tmp_path / "ts"))
    result = mayfly("deploy", "--temporary", "--json")
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.stdout)
    assert "Bundling src/index.ts with esbuild… done" in result.stderr
    assert deployed["bundled"] == {
        "tool": "esbuild",
        "inputs": ["node_modules/tiny-pkg/worker.js", "src/index.ts", "src/suffix.ts"],
    }
    payload = version(platform, deployed["version_id"])
    assert payload["main_module"] == "index.js"
    [module] = payload["modules"]  # the source map is stored, never sent to the runtime
    assert module["kind"] == "esm"
    assert "toUpperCase" in module["text"]  # the `workerd` export condition won
    assert "interface" not in module["text"]
    assert module["text"].rstrip().endswith("//# sourceMappingURL=index.js.map")


def test_bundle_errors_show_esbuild_s_message(
    mayfly: Mayfly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = typescript_project(tmp_path / "ts")
    (project / "src" / "index.ts").write_text(
        'import { x } from "not-installed";\nexport default x;\n'
    )
    monkeypatch.chdir(project)
    code, body = mayfly.json("deploy", "--temporary")
    assert code == 1 and body["error"]["code"] == "bundle_failed"
    assert 'Could not resolve "not-installed"' in body["error"]["message"]
    assert not mayfly.cache_file.exists()


def test_missing_esbuild(mayfly: Mayfly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(typescript_project(tmp_path / "ts"))
    result = mayfly("deploy", "--temporary", MAYFLY_ESBUILD=str(tmp_path / "no-esbuild"))
    assert result.exit_code == 1
    assert "MAYFLY_ESBUILD" in result.stderr and "not an executable file" in result.stderr


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_examples_deploy(
    mayfly: Mayfly, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLES / "typescript")
    typed = mayfly.ok("deploy", "--temporary")
    assert typed["script"] == "typed" and typed["bundled"]["tool"] == "esbuild"
    staging = mayfly.ok("deploy", "--env", "staging")
    assert staging["script"] == "typed-staging"
    assert version(platform, staging["version_id"])["env"] == {"GREETING": "Hello from staging"}

    monkeypatch.chdir(EXAMPLES / "site")
    site = mayfly.ok("deploy")
    assert site["bundled"] is None
    assert site["assets"]["files"] == 3
    assert [(n["binding"], n["title"]) for n in site["kv_namespaces"]] == [
        ("COUNTER", "site-counter")
    ]
    payload = version(platform, site["version_id"])
    assert payload["assets"]["config"]["run_worker_first"] == ["/api/*"]
    assert "X-Content-Type-Options" in payload["assets"]["config"]["_headers"]
