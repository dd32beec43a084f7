"""_redirects and _headers, once the control plane hands the dispatcher their parsed rules.

wrangler sends both files as raw text (spec wrangler-assets.md §6.3); the control plane parses them
(services/resources/asset_rules.py) and the asset-worker applies the parsed rules (`redirects`, `headers` in
its CONFIG). These tests pin that the data plane passes parsed rules through
and that Cloudflare's asset-worker applies them (§7.5), using a fake internal API whose version
answer carries them in the asset-worker's own format (what miniflare's constructRedirects and
constructHeaders build from the files)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.runtime.assets_support import content_type, request, wrangler_hash
from tests.runtime.harness import LiveDataPlane, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SECRET = "assets-rules-secret"
HOST = "site.acct.localhost"
FILES = {path: path.encode() for path in ("/index.html", "/about.html", "/css/site.css")}

# /old-about /about 301            /blog/* /posts/:splat       /spa/* /about 200
REDIRECTS = {
    "version": 1,
    "staticRules": {"/old-about": {"status": 301, "to": "/about", "lineNumber": 1}},
    "rules": {
        "/blog/*": {"status": 302, "to": "/posts/:splat"},
        "/spa/*": {"status": 200, "to": "/about"},
    },
}
# /*  X-Frame-Options: DENY        /css/*  Cache-Control: public, max-age=31536000  ! ETag
HEADERS = {
    "version": 2,
    "rules": {
        "/*": {"set": {"x-frame-options": "DENY"}},
        "/css/*": {"set": {"cache-control": "public, max-age=31536000"}, "unset": ["ETag"]},
    },
}


def internal_api() -> Starlette:
    def version(request: Request) -> Response:
        manifest = {
            path: {"hash": wrangler_hash(data, path), "content_type": content_type(path)}
            for path, data in FILES.items()
        }
        return JSONResponse(
            {
                "version_id": request.path_params["version_id"],
                "account_id": "acct",
                "script": "site",
                "main_module": None,
                "compatibility_date": "2025-01-01",
                "compatibility_flags": [],
                "modules": [],
                "env": {},
                "kv_namespaces": [],
                "has_worker": False,
                "assets": {
                    "config": {"redirects": REDIRECTS, "headers": HEADERS},
                    "manifest": manifest,
                },
                "assets_binding": None,
            }
        )

    def route(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "account_id": "acct",
                "script": "site",
                "version_id": "v-rules",
                "expires_at_ms": None,
                "message": None,
            }
        )

    def asset(request: Request) -> Response:
        by_hash = {wrangler_hash(data, path): data for path, data in FILES.items()}
        return Response(by_hash[request.path_params["hash"]])

    def authorized(handler: Any) -> Any:
        def checked(request: Request) -> Response:
            if request.headers.get("x-mayfly-internal-secret") != SECRET:
                return JSONResponse({"error": "forbidden"}, status_code=403)
            response: Response = handler(request)
            return response

        return checked

    return Starlette(
        routes=[
            Route("/internal/v1/route", authorized(route)),
            Route("/internal/v1/versions/{version_id}", authorized(version)),
            Route("/internal/v1/assets/{account_id}/{hash}", authorized(asset)),
        ]
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDataPlane]:
    require_workerd()
    settings = platform_settings(tmp_path_factory.mktemp("assets-rules"), shards=1)
    live = LiveDataPlane(settings, internal_api(), SECRET)
    yield live
    live.close()


def test_redirects_apply_before_html_handling(live: LiveDataPlane) -> None:
    moved = request(live, HOST, "/old-about?x=1")
    assert (moved.status_code, moved.headers["location"]) == (301, "/about?x=1")
    splat = request(live, HOST, "/blog/2024/hello")
    assert (splat.status_code, splat.headers["location"]) == (302, "/posts/2024/hello")
    # 200: a rewrite, served at the requested URL.
    rewritten = request(live, HOST, "/spa/settings/profile")
    assert (rewritten.status_code, rewritten.text) == (200, "/about.html")


def test_headers_apply_to_asset_responses(live: LiveDataPlane) -> None:
    page = request(live, HOST, "/about")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["etag"] == f'"{wrangler_hash(FILES["/about.html"], "/about.html")}"'
    css = request(live, HOST, "/css/site.css")
    assert css.text == "/css/site.css"
    assert css.headers["cache-control"] == "public, max-age=31536000"
    assert css.headers["x-frame-options"] == "DENY"
    assert "etag" not in css.headers
