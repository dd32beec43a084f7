"""Workers with static assets (spec wrangler-assets.md §6.4, §7.1): who answers a request, the
assets binding, redeploys, and that a version reads its own account's files only."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, update
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mayfly.storage import tables
from tests.runtime.assets_support import deploy_site, request, upload_assets, wrangler_hash
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

FILES = {
    path: path.encode()
    for path in ("/index.html", "/about.html", "/blog/post.html", "/404.html", "/api/docs.html")
}

# Answers "worker <method> <path>"; /fetch/<path> answers what env.ASSETS says for <path>.
WORKER = """
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/fetch/")) {
      const asset = await env.ASSETS.fetch(new URL(url.pathname.slice(6) + url.search, url), request);
      const location = asset.headers.get("location");
      return new Response(`assets ${asset.status} ${location ?? await asset.text()}`);
    }
    return new Response(`worker ${request.method} ${url.pathname}`);
  },
};
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("assets-worker")))
    yield live
    live.close()


@pytest.fixture(scope="module")
def account(live: LivePlatform) -> dict[str, Any]:
    return live.provision()


def site(live: LivePlatform, account: dict[str, Any], name: str, **options: Any) -> str:
    config = options.pop("config", {})
    deploy_site(live, account, name, FILES, config, worker=WORKER, binding="ASSETS", **options)
    return live.host(account, name)


def text(live: LivePlatform, host: str, path: str, **options: Any) -> tuple[int, str]:
    response = request(live, host, path, **options)
    return response.status_code, response.headers.get("location") or response.text


def asked_files(live: LivePlatform) -> list[str]:
    return [p for p in live.internal.paths if p.startswith("/internal/v1/assets/")]


NAVIGATE = {"sec-fetch-mode": "navigate"}


def test_assets_first_then_the_worker(live: LivePlatform, account: dict[str, Any]) -> None:
    """§7.1: SPA mode on a date before 2025-04-01 still hands misses to the Worker."""
    host = site(live, account, "spa-old", config={"not_found_handling": "single-page-application"})
    assert text(live, host, "/") == (200, "/index.html")
    assert text(live, host, "/about") == (200, "/about.html")
    assert text(live, host, "/blog/post.html") == (307, "/blog/post")
    assert text(live, host, "/missing") == (200, "worker GET /missing")
    assert text(live, host, "/missing", headers=NAVIGATE) == (200, "worker GET /missing")
    # An asset answers other methods with 405: the Worker never sees them.
    assert text(live, host, "/about", method="POST")[0] == 405
    assert text(live, host, "/missing", method="POST") == (200, "worker POST /missing")


def test_navigations_prefer_assets_from_2025_04_01(
    live: LivePlatform, account: dict[str, Any]
) -> None:
    host = site(
        live,
        account,
        "spa-new",
        config={"not_found_handling": "single-page-application"},
        compatibility_date="2025-06-01",
    )
    assert text(live, host, "/missing") == (200, "worker GET /missing")
    assert text(live, host, "/missing", headers=NAVIGATE) == (200, "/index.html")


def test_run_worker_first_true(live: LivePlatform, account: dict[str, Any]) -> None:
    host = site(live, account, "first", config={"run_worker_first": True})
    assert text(live, host, "/") == (200, "worker GET /")
    assert text(live, host, "/about") == (200, "worker GET /about")
    assert text(live, host, "/about", method="POST") == (200, "worker POST /about")
    assert text(live, host, "/fetch/about") == (200, "assets 200 /about.html")


def test_run_worker_first_rules(live: LivePlatform, account: dict[str, Any]) -> None:
    """The last column of §7.1's table: negative rules win, then positive ones, then assets (with
    not_found_handling, since static routing is configured) rather than the Worker."""
    host = site(
        live,
        account,
        "rules",
        config={
            "run_worker_first": ["/blog/*", "!/blog/post*", "/about"],
            "not_found_handling": "404-page",
        },
    )
    assert text(live, host, "/") == (200, "/index.html")
    assert text(live, host, "/about") == (200, "worker GET /about")
    assert text(live, host, "/about", method="POST") == (200, "worker POST /about")
    assert text(live, host, "/blog/") == (200, "worker GET /blog/")
    assert text(live, host, "/blog/anything") == (200, "worker GET /blog/anything")
    assert text(live, host, "/blog/post") == (200, "/blog/post.html")
    assert text(live, host, "/blog/post.html") == (307, "/blog/post")
    assert text(live, host, "/missing") == (404, "/404.html")


def test_the_assets_binding(live: LivePlatform, account: dict[str, Any]) -> None:
    """env.ASSETS is the asset-worker alone: html_handling and not_found_handling apply, the
    router does not (it never hands a miss to the Worker)."""
    host = site(live, account, "binding", config={"not_found_handling": "404-page"})
    assert text(live, host, "/fetch/about") == (200, "assets 200 /about.html")
    assert text(live, host, "/fetch/about.html?x=1") == (200, "assets 307 /about?x=1")
    assert text(live, host, "/fetch/missing") == (200, "assets 404 /404.html")
    spa = site(
        live, account, "binding-spa", config={"not_found_handling": "single-page-application"}
    )
    assert text(live, spa, "/fetch/missing") == (200, "assets 200 /index.html")
    plain = site(live, account, "binding-none")
    assert text(live, plain, "/fetch/missing") == (200, "assets 404 ")


def test_a_redeploy_serves_the_new_files_on_the_next_request(
    live: LivePlatform, account: dict[str, Any]
) -> None:
    host = live.host(account, "redeploy")
    deploy_site(live, account, "redeploy", {"/index.html": b"one", "/old.txt": b"old"})
    assert text(live, host, "/") == (200, "one")
    assert text(live, host, "/old.txt") == (200, "old")
    deploy_site(live, account, "redeploy", {"/index.html": b"two", "/new.txt": b"new"})
    assert text(live, host, "/") == (200, "two")
    assert text(live, host, "/new.txt") == (200, "new")
    assert text(live, host, "/old.txt") == (404, "")
    # From assets-only to a Worker with assets, and back.
    deploy_site(live, account, "redeploy", {"/index.html": b"three"}, worker=WORKER)
    assert text(live, host, "/") == (200, "three")
    assert text(live, host, "/new.txt") == (200, "worker GET /new.txt")
    deploy_site(live, account, "redeploy", {"/index.html": b"four"})
    assert text(live, host, "/new.txt") == (404, "")


def test_a_version_reads_only_its_own_accounts_files(live: LivePlatform) -> None:
    """The hash is the client's key, per account: another account naming it never gets the
    victim's file, and the data plane asks for the file in the version's account only. (Files
    larger than the dispatcher caches, so every request asks.)"""
    victim, attacker = live.provision(), live.provision()
    secret, decoy = b"secret " * 50_000, b"decoy! " * 50_000
    deploy_site(live, victim, "vault", {"/secret.txt": secret})
    vault = live.host(victim, "vault")
    digest = wrangler_hash(secret, "/secret.txt")
    # The attacker names the victim's hash: the control plane asks for the bytes (the hash is
    # per account), and refuses bytes that are not the file that hash names.
    thief = live.host(attacker, "thief")
    manifest = {"/secret.txt": {"hash": digest, "size": len(secret)}}
    session = live.api.post(
        f"accounts/{attacker['id']}/workers/scripts/thief/assets-upload-session",
        headers={"authorization": f"Bearer {attacker['apiToken']}"},
        json={"manifest": manifest},
    )
    assert session.json()["result"]["buckets"] == [[digest]]
    assert text(live, vault, "/secret.txt") == (200, secret.decode())
    refused = live.api.post(
        f"accounts/{attacker['id']}/workers/assets/upload?base64=true",
        headers={"authorization": f"Bearer {session.json()['result']['jwt']}"},
        files=[(digest, (digest, base64.b64encode(decoy), "text/plain; charset=utf-8"))],
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"][0]["code"] == 10021
    # Even with a file of its own stored under that hash (as files were before hashes were
    # checked), the attacker's version serves its own bytes, never the victim's.
    upload_assets(live, attacker, "thief", {"/decoy.txt": decoy})
    with live.platform.db.begin() as conn:
        conn.execute(
            update(tables.asset_files)
            .where(
                tables.asset_files.c.account_id == attacker["id"],
                tables.asset_files.c.hash == wrangler_hash(decoy, "/decoy.txt"),
            )
            .values(hash=digest)
        )
    completion, uploaded = upload_assets(live, attacker, "thief", {"/secret.txt": secret})
    assert uploaded == []  # the attacker's account holds that hash now: nothing asked
    put = live.api.put(
        f"accounts/{attacker['id']}/workers/scripts/thief",
        headers={"authorization": f"Bearer {attacker['apiToken']}"},
        files=[
            (
                "metadata",
                (
                    None,
                    json.dumps(
                        {
                            "assets": {"jwt": completion},
                            "compatibility_date": "2025-01-01",
                        }
                    ),
                    "application/json",
                ),
            )
        ],
    )
    assert put.status_code == 200, put.text
    live.internal.paths.clear()
    assert text(live, thief, "/secret.txt") == (200, decoy.decode())
    assert asked_files(live) == [f"/internal/v1/assets/{attacker['id']}/{digest}"]
    # Even with the attacker's copy gone, the victim's file is never the answer.
    with live.platform.db.begin() as conn:
        conn.execute(
            delete(tables.asset_files).where(tables.asset_files.c.account_id == attacker["id"])
        )
    live.internal.paths.clear()
    assert text(live, thief, "/secret.txt")[0] == 500
    assert set(asked_files(live)) == {f"/internal/v1/assets/{attacker['id']}/{digest}"}
    assert text(live, vault, "/secret.txt") == (200, secret.decode())


def test_an_unreachable_control_plane_is_a_retryable_503(
    live: LivePlatform, account: dict[str, Any]
) -> None:
    host = live.host(account, "flaky")
    deploy_site(live, account, "flaky", {"/index.html": b"home", "/other.txt": b"other"})
    assert text(live, host, "/") == (200, "home")  # the site is known; /other.txt never asked
    internal = live.internal.app

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/internal/v1/assets/"):
            await JSONResponse({"error": "down"}, status_code=500)(scope, receive, send)
            return
        await internal(scope, receive, send)

    live.internal.app = failing
    try:
        response = request(live, host, "/other.txt")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-mayfly-error"] == "unavailable"
        # A 304 needs no bytes: it still answers.
        etag = f'"{wrangler_hash(b"other", "/other.txt")}"'
        cached = request(live, host, "/other.txt", headers={"if-none-match": etag})
        assert cached.status_code == 304
    finally:
        live.internal.app = internal
    assert text(live, host, "/other.txt") == (200, "other")
