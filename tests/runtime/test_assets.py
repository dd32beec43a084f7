"""Static assets served by the data plane as Cloudflare serves them (spec wrangler-assets.md §7),
through the real API and real workerd shards: assets-only Workers here, Workers with assets in
test_assets_worker.py. Every file's body is its own path, so a body names the file served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.runtime.assets_support import deploy_site, request, wrangler_hash
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

TREE = [
    "/index.html",
    "/about.html",
    "/blog/index.html",
    "/blog/post.html",
    "/both.html",
    "/both/index.html",
    "/docs/guide/index.html",
    "/docs/404.html",
    "/deep/er/page.html",
    "/404.html",
    "/file.txt",
    "/img/x.png",
    "/LICENSE",
    "/a b.txt",
    "/ünïcødé.txt",
]
FILES = {path: path.encode() for path in TREE}

# §7.3: request -> (status, body path or Location) per html_handling.
HTML_HANDLING: dict[str, dict[str, tuple[int, str | None]]] = {
    "auto-trailing-slash": {
        "/": (200, "/index.html"),
        "/index": (307, "/"),
        "/index.html": (307, "/"),
        "/about": (200, "/about.html"),
        "/about/": (307, "/about"),
        "/about.html": (307, "/about"),
        "/about/index.html": (307, "/about"),
        "/blog": (307, "/blog/"),
        "/blog/": (200, "/blog/index.html"),
        "/blog/index": (307, "/blog/"),
        "/blog/index.html": (307, "/blog/"),
        "/blog/post": (200, "/blog/post.html"),
        "/blog/post/": (307, "/blog/post"),
        "/both": (200, "/both.html"),
        "/both/": (200, "/both/index.html"),
        "/both.html": (307, "/both"),
        "/both/index.html": (307, "/both/"),
        "/file.txt": (200, "/file.txt"),
        "/img/x.png": (200, "/img/x.png"),
        "/LICENSE": (200, "/LICENSE"),
        "/file.txt/": (404, None),
    },
    "force-trailing-slash": {
        "/": (200, "/index.html"),
        "/index": (307, "/"),
        "/index.html": (307, "/"),
        "/about": (307, "/about/"),
        "/about/": (200, "/about.html"),
        "/about.html": (307, "/about/"),
        "/about/index.html": (307, "/about/"),
        "/blog": (307, "/blog/"),
        "/blog/": (200, "/blog/index.html"),
        "/blog/index": (307, "/blog/"),
        "/blog/index.html": (307, "/blog/"),
        "/blog/post": (307, "/blog/post/"),
        "/blog/post/": (200, "/blog/post.html"),
        "/both": (307, "/both/"),
        "/both/": (200, "/both/index.html"),
        "/both.html": (200, "/both.html"),
        "/both/index.html": (307, "/both/"),
        "/file.txt": (200, "/file.txt"),
        "/LICENSE": (200, "/LICENSE"),
        "/file.txt/": (404, None),
    },
    "drop-trailing-slash": {
        "/": (200, "/index.html"),
        "/index": (307, "/"),
        "/index.html": (307, "/"),
        "/about": (200, "/about.html"),
        "/about/": (307, "/about"),
        "/about.html": (307, "/about"),
        "/about/index.html": (307, "/about"),
        "/blog": (200, "/blog/index.html"),
        "/blog/": (307, "/blog"),
        "/blog/index": (307, "/blog"),
        "/blog/index.html": (307, "/blog"),
        "/blog/post": (200, "/blog/post.html"),
        "/blog/post/": (307, "/blog/post"),
        "/both": (200, "/both.html"),
        "/both/": (307, "/both"),
        "/both.html": (307, "/both"),
        "/both/index.html": (200, "/both/index.html"),
        "/file.txt": (200, "/file.txt"),
        "/LICENSE": (200, "/LICENSE"),
        "/file.txt/": (404, None),
    },
    "none": {
        "/": (404, None),
        "/index": (404, None),
        "/index.html": (200, "/index.html"),
        "/about": (404, None),
        "/about/": (404, None),
        "/about.html": (200, "/about.html"),
        "/about/index.html": (404, None),
        "/blog": (404, None),
        "/blog/": (404, None),
        "/blog/index": (404, None),
        "/blog/index.html": (200, "/blog/index.html"),
        "/blog/post": (404, None),
        "/blog/post/": (404, None),
        "/both": (404, None),
        "/both/": (404, None),
        "/both.html": (200, "/both.html"),
        "/both/index.html": (200, "/both/index.html"),
        "/file.txt": (200, "/file.txt"),
        "/LICENSE": (200, "/LICENSE"),
        "/file.txt/": (404, None),
    },
}

# §7.4: request -> (status, body path) per not_found_handling.
NOT_FOUND: dict[str, dict[str, tuple[int, str | None]]] = {
    "none": {
        "/missing": (404, None),
        "/docs/missing": (404, None),
        "/docs/guide/missing": (404, None),
        "/docs/": (404, None),
        "/deep/er/missing": (404, None),
    },
    "404-page": {
        "/missing": (404, "/404.html"),
        "/docs/missing": (404, "/docs/404.html"),
        "/docs/guide/missing": (404, "/docs/404.html"),
        "/docs/": (404, "/docs/404.html"),
        "/deep/er/missing": (404, "/404.html"),
    },
    "single-page-application": {
        "/missing": (200, "/index.html"),
        "/docs/missing": (200, "/index.html"),
        "/docs/guide/missing": (200, "/index.html"),
        "/docs/": (200, "/index.html"),
        "/deep/er/missing": (200, "/index.html"),
    },
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("assets")))
    yield live
    live.close()


@pytest.fixture(scope="module")
def account(live: LivePlatform) -> dict[str, Any]:
    return live.provision()


@pytest.fixture(scope="module")
def sites(live: LivePlatform, account: dict[str, Any]) -> dict[str, str]:
    """One assets-only Worker per configuration: config name -> host."""
    configs: dict[str, dict[str, Any]] = {
        **{f"html-{mode}": {"html_handling": mode} for mode in HTML_HANDLING},
        **{f"nf-{mode}": {"not_found_handling": mode} for mode in NOT_FOUND},
        "base-path": {"base_path": "/docs", "not_found_handling": "404-page"},
    }
    hosts = {}
    for name, config in configs.items():
        deploy_site(live, account, name, FILES, config)
        hosts[name] = live.host(account, name)
    return hosts


def expect(response: Any, status: int, target: str | None) -> None:
    """`target`: the file whose body is served, or the Location of a redirect."""
    assert response.status_code == status, response.text
    if status == 307:
        assert response.headers["location"] == target
        assert response.content == b""
    elif target is None:
        assert response.content == b""
    else:
        assert response.text == target


@pytest.mark.parametrize(
    ("mode", "path"), [(mode, path) for mode, table in HTML_HANDLING.items() for path in table]
)
def test_html_handling(live: LivePlatform, sites: dict[str, str], mode: str, path: str) -> None:
    status, target = HTML_HANDLING[mode][path]
    expect(live.get(sites[f"html-{mode}"], path), status, target)


@pytest.mark.parametrize(
    ("mode", "path"), [(mode, path) for mode, table in NOT_FOUND.items() for path in table]
)
def test_not_found_handling(
    live: LivePlatform, sites: dict[str, str], mode: str, path: str
) -> None:
    status, target = NOT_FOUND[mode][path]
    expect(live.get(sites[f"nf-{mode}"], path), status, target)


def test_redirects_keep_the_query_and_encode_the_canonical_path(
    live: LivePlatform, sites: dict[str, str]
) -> None:
    auto, force = sites["html-auto-trailing-slash"], sites["html-force-trailing-slash"]
    expect(live.get(auto, "/about.html?q=1"), 307, "/about?q=1")
    expect(live.get(force, "/about?q=1"), 307, "/about/?q=1")
    # Another spelling of an existing asset is redirected to the canonical one.
    expect(live.get(auto, "/%61bout"), 307, "/about")
    # Paths are decoded per segment before the lookup; the canonical encoding is served as is.
    expect(live.get(auto, "/a%20b.txt"), 200, "/a b.txt")
    expect(live.get(auto, "/%C3%BCn%C3%AFc%C3%B8d%C3%A9.txt"), 200, "/ünïcødé.txt")
    expect(live.get(auto, "//about"), 307, "/about")


def test_base_path(live: LivePlatform, sites: dict[str, str]) -> None:
    host = sites["base-path"]
    expect(live.get(host, "/"), 404, None)
    expect(live.get(host, "/about"), 404, None)
    expect(live.get(host, "/docs"), 307, "/docs/")
    expect(live.get(host, "/docs/"), 200, "/index.html")
    expect(live.get(host, "/docs/about"), 200, "/about.html")
    expect(live.get(host, "/docs/about.html"), 307, "/docs/about")
    expect(live.get(host, "/docs/missing"), 404, "/404.html")


def test_headers_etag_and_conditional_requests(live: LivePlatform, sites: dict[str, str]) -> None:
    host = sites["html-auto-trailing-slash"]
    etag = f'"{wrangler_hash(FILES["/about.html"], "/about.html")}"'
    response = live.get(host, "/about")
    assert response.headers["etag"] == etag
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=0, must-revalidate"
    for tag in (etag, f"W/{etag}"):
        cached = request(live, host, "/about", headers={"if-none-match": tag})
        assert cached.status_code == 304
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert cached.headers["content-type"] == "text/html; charset=utf-8"
    other = request(live, host, "/about", headers={"if-none-match": '"0123"'})
    assert (other.status_code, other.text) == (200, "/about.html")
    # Asked with credentials or a range: not cacheable by the browser.
    private = request(live, host, "/about", headers={"authorization": "Bearer x"})
    assert "cache-control" not in private.headers
    head = live.get(host, "/about", method="HEAD")
    assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", etag)


def test_content_type_is_the_uploaded_one_and_none_for_application_null(
    live: LivePlatform, sites: dict[str, str]
) -> None:
    host = sites["html-auto-trailing-slash"]
    assert live.get(host, "/img/x.png").headers["content-type"] == "image/png"
    assert live.get(host, "/file.txt").headers["content-type"] == "text/plain; charset=utf-8"
    license_ = live.get(host, "/LICENSE")
    assert license_.text == "/LICENSE"
    assert "content-type" not in license_.headers


def test_only_get_and_head_reach_an_asset(live: LivePlatform, sites: dict[str, str]) -> None:
    host = sites["nf-404-page"]
    for method in ("POST", "PUT", "DELETE"):
        assert live.get(host, "/about", method=method).status_code == 405
        # The 404 page answers other methods too (nothing else could).
        assert live.get(host, "/missing", method=method).status_code == 405
    assert live.get(sites["nf-none"], "/missing", method="POST").status_code == 404


def test_small_files_are_asked_once_per_shard(live: LivePlatform, account: dict[str, Any]) -> None:
    """The dispatcher keeps small files (content-addressed per account, so never stale)."""
    deploy_site(live, account, "cached", {"/index.html": b"cached home"})
    host = live.host(account, "cached")
    live.internal.paths.clear()
    for _ in range(8):
        expect(live.get(host, "/"), 200, "cached home")
    fetches = [p for p in live.internal.paths if p.startswith("/internal/v1/assets/")]
    assert 1 <= len(fetches) <= live.settings.shards


def test_redirects_and_headers_files(live: LivePlatform, account: dict[str, Any]) -> None:
    """§7.5 end to end: the raw files as wrangler sends them, parsed by the control plane and
    applied by the asset-worker (redirects before html handling, headers on asset responses)."""
    config = {
        "_redirects": "# moved\n/old-about /about 301\n/* /index.html 200\n/news/* /posts/:splat\n",
        "_headers": "/docs/*\n  X-Frame-Options: DENY\n  ! ETag\n",
    }
    deploy_site(live, account, "rules", FILES, config)
    host = live.host(account, "rules")
    moved = live.get(host, "/old-about?x=1")
    assert (moved.status_code, moved.headers["location"]) == (301, "/about?x=1")
    # /* /index.html 200 loops, so it was dropped: a missing page is still a 404.
    assert live.get(host, "/missing").status_code == 404
    splat = live.get(host, "/news/2024/hello")
    assert (splat.status_code, splat.headers["location"]) == (302, "/posts/2024/hello")
    # html handling still applies to paths no rule matches
    expect(live.get(host, "/blog/post"), 200, "/blog/post.html")
    guide = live.get(host, "/docs/guide/")
    assert (guide.status_code, guide.text) == (200, "/docs/guide/index.html")
    assert guide.headers["x-frame-options"] == "DENY"
    assert "etag" not in guide.headers
    about = live.get(host, "/about")
    assert "x-frame-options" not in about.headers and "etag" in about.headers
