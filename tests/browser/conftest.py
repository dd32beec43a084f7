"""A real Chromium (Debian's, driven by Playwright) against a real `mayfly serve` on free ports.

The test process also opens the server's database (SQLite in the data dir) through a Platform of
its own, to set up users and to ask the routing service what the data plane serves for a host.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from mayfly.app import Platform
from mayfly.model import Route
from tests.conftest import auth, make_settings, provision, upload_body
from tests.serve import ServeProcess, free_port, serving

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Live:
    platform: Platform
    url: str
    workers_port: int

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/client/v4/", timeout=30)

    def provision(self) -> dict[str, Any]:
        with self.api() as api:
            return provision(api)  # type: ignore[arg-type]

    def deploy(self, account_id: str, token: str, script: str) -> None:
        with self.api() as api:
            response = api.put(
                f"accounts/{account_id}/workers/scripts/{script}",
                headers=auth(token),
                **upload_body(
                    bindings=[{"type": "plain_text", "name": "GREETING", "text": script}]
                ),
            )
            assert response.status_code == 200, response.text

    def kv(self, account_id: str, token: str, title: str, entries: dict[str, str]) -> str:
        with self.api() as api:
            created = api.post(
                f"accounts/{account_id}/storage/kv/namespaces",
                headers=auth(token),
                json={"title": title},
            )
            namespace: str = created.json()["result"]["id"]
            for key, value in entries.items():
                api.put(
                    f"accounts/{account_id}/storage/kv/namespaces/{namespace}/values/{key}",
                    headers=auth(token),
                    content=value.encode(),
                )
        return namespace

    def route(self, host: str) -> Route:
        """The routing answer for a Worker host: what the data plane serves (ok/moved/expired)."""
        return self.platform.services.routing.route(host)

    def serves(self, host: str) -> str:
        return self.route(host).status

    def get_worker(self, url: str) -> httpx.Response:
        """Request a Worker over HTTP on the workers port (needs the data plane)."""
        host = url.split("://", 1)[1]
        with httpx.Client(timeout=30) as client:
            return client.get(f"http://127.0.0.1:{self.workers_port}/", headers={"host": host})


@pytest.fixture
def serve_settings() -> dict[str, Any]:
    """Settings the server runs with beyond the defaults here (a module overrides this fixture)."""
    return {}


@pytest.fixture
def live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serve_settings: dict[str, Any]
) -> Iterator[Live]:
    """A real `mayfly serve` on free ports; and, in the test, a Platform on the same database."""
    monkeypatch.setattr(
        "mayfly.services.identity.users.PasswordHasher",
        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    api_port, workers_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    settings = make_settings(
        tmp_path,
        api_port=api_port,
        workers_port=workers_port,
        public_url=url,
        runtime=True,
        **serve_settings,
    )
    flags = {
        "public-url": url,
        "pow-k": settings.pow_k,
        "pow-g": settings.pow_g,
        "runtime": "true",
        "shards": 1,
        "log-level": "warning",
        **{name.replace("_", "-"): value for name, value in serve_settings.items()},
    }
    args = [arg for flag, value in flags.items() for arg in (f"--{flag}", str(value))]
    assert settings.data_dir == tmp_path / "data"  # where serving() puts it
    with serving(ServeProcess, tmp_path, *args, api_port=api_port, workers_port=workers_port):
        platform = Platform.create(settings)
        try:
            yield Live(platform, url, workers_port)
        finally:
            platform.db.dispose()


# Module scope, not session: Playwright's sync API keeps an event loop running in the main thread
# while it is started, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def page_without_javascript(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    yield ctx.new_page()
    ctx.close()


def screenshot(page: Page, name: str, readme: bool = False) -> Path:
    """Save a full-page screenshot under artifacts/.

    With MAYFLY_UPDATE_README_IMAGES=1, README images are refreshed under docs/images/ too (a
    plain test run leaves the committed image, and so the work tree, alone).
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    if readme and os.environ.get("MAYFLY_UPDATE_README_IMAGES") == "1":
        images = ROOT / "docs" / "images"
        images.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, images / name)
    return path
