"""Workers Static Assets with the real wrangler: `wrangler deploy --temporary` of an assets-only site
and of a Worker with assets and an ASSETS binding, served by the data plane (spec
wrangler-assets.md §2, §8; the serving rules are pinned in tests/runtime/test_assets*.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

SITE_FILES = 6  # index, about, 404, copy (the same bytes as index), css/site.css, LICENSE


def serve(server: MayflyServer, user: WranglerUser, script: str, path: str) -> httpx.Response:
    """A request to the data plane for the Worker `script` of the user's temporary account."""
    account = user.temporary_account()["account"]["name"]
    with httpx.Client(timeout=30) as client:
        return client.get(
            f"http://127.0.0.1:{server.workers_port}{path}",
            headers={"host": f"{script}.{account}.localhost"},
        )


def uploaded_paths(result: WranglerResult) -> list[str]:
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ /")]


def deploy(server: MayflyServer, user: WranglerUser, project: Path) -> WranglerResult:
    result = run_wrangler(["deploy", "--temporary"], project, server.env(), user)
    assert result.exit_code == 0, str(result)
    return result


@pytest.fixture(scope="module")
def user(new_user: Any) -> WranglerUser:
    return new_user("assets")


@pytest.fixture(scope="module")
def site(new_project: Any) -> Path:
    path: Path = new_project("assets-site")
    return path


@pytest.fixture(scope="module")
def fullstack(new_project: Any) -> Path:
    path: Path = new_project("assets-fullstack")
    return path


def test_an_assets_only_site(mayfly_server: MayflyServer, user: WranglerUser, site: Path) -> None:
    first = deploy(mayfly_server, user, site)
    assert f"Read {SITE_FILES + 1} files from the assets directory" in first.stdout, str(first)
    assert "Found 5 new or modified static assets to upload" in first.stdout, str(first)
    assert len(uploaded_paths(first)) == 5
    assert "Uploaded 5 files (1 already uploaded)" in first.stdout, str(first)
    assert "Uploaded assets-site" in first.stdout, str(first)

    home = serve(mayfly_server, user, "assets-site", "/")
    assert (home.status_code, home.text) == (200, "<h1>home</h1>\n")
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert serve(mayfly_server, user, "assets-site", "/about").text == "<h1>about</h1>\n"
    about = serve(mayfly_server, user, "assets-site", "/about.html")
    assert (about.status_code, about.headers["location"]) == (307, "/about")
    css = serve(mayfly_server, user, "assets-site", "/css/site.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    license_ = serve(mayfly_server, user, "assets-site", "/LICENSE")
    assert license_.text == "MIT License\n"
    assert "content-type" not in license_.headers
    missing = serve(mayfly_server, user, "assets-site", "/nope")
    assert (missing.status_code, missing.text) == (404, "<h1>not here</h1>\n")

    # Nothing changed: nothing is uploaded again.
    again = deploy(mayfly_server, user, site)
    assert "No updated asset files to upload. Proceeding with deployment..." in again.stdout
    assert uploaded_paths(again) == []
    assert serve(mayfly_server, user, "assets-site", "/about").text == "<h1>about</h1>\n"

    # One file changed: it alone is uploaded, and served on the next request.
    (site / "public" / "about.html").write_text("<h1>about us</h1>\n")
    changed = deploy(mayfly_server, user, site)
    assert "Found 1 new or modified static asset to upload" in changed.stdout, str(changed)
    assert uploaded_paths(changed) == ["/about.html"]
    assert "Uploaded 1 file (5 already uploaded)" in changed.stdout, str(changed)
    assert serve(mayfly_server, user, "assets-site", "/about").text == "<h1>about us</h1>\n"


def test_a_worker_with_assets_and_a_binding(
    mayfly_server: MayflyServer, user: WranglerUser, fullstack: Path
) -> None:
    result = deploy(mayfly_server, user, fullstack)
    assert "Found 3 new or modified static assets to upload" in result.stdout, str(result)
    assert "env.ASSETS" in result.stdout and "Assets" in result.stdout, str(result)

    home = serve(mayfly_server, user, "assets-fullstack", "/")
    assert (home.status_code, home.text) == (200, "<h1>app</h1>\n")
    script = serve(mayfly_server, user, "assets-fullstack", "/app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    # run_worker_first = ["/api/*", "!/api/docs/*"]
    api = serve(mayfly_server, user, "assets-fullstack", "/api/users")
    assert api.json() == {"worker": True, "path": "/api/users"}
    docs = serve(mayfly_server, user, "assets-fullstack", "/api/docs/")
    assert docs.text == "<h1>api docs</h1>\n"
    # Outside the rules, a miss is the single-page app (static routing is configured).
    assert serve(mayfly_server, user, "assets-fullstack", "/settings").text == "<h1>app</h1>\n"
    via_binding = serve(mayfly_server, user, "assets-fullstack", "/api/home")
    assert via_binding.text == "from the binding: 200 <h1>app</h1>\n"
