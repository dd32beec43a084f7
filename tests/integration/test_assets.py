"""Static assets: upload sessions that skip stored files, tokens, quotas, versions that carry them."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import blake3
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import HELLO, auth, provision, upload_body


def wrangler_hash(data: bytes, path: str) -> str:
    """wrangler's asset hash: hex(BLAKE3(base64(bytes) + extension))[:32]."""
    ext = path.rsplit("/", 1)[-1].rpartition(".")[2] if "." in path.rsplit("/", 1)[-1] else ""
    return blake3.blake3((base64.b64encode(data).decode() + ext).encode()).hexdigest()[:32]


SITE = {
    "/index.html": (b"<h1>home</h1>", "text/html; charset=utf-8"),
    "/about.html": (b"<h1>about</h1>", "text/html; charset=utf-8"),
    "/style.css": (b"body{}", "text/css; charset=utf-8"),
    "/LICENSE": (b"MIT", "application/null"),
    "/copy.html": (b"<h1>home</h1>", "text/html; charset=utf-8"),
}


def manifest(files: dict[str, tuple[bytes, str]]) -> dict[str, Any]:
    return {p: {"hash": wrangler_hash(d, p), "size": len(d)} for p, (d, _) in files.items()}


def upload_assets(
    client: TestClient, account: dict[str, Any], script: str, files: dict[str, tuple[bytes, str]]
) -> tuple[str, int]:
    """Run AS1 + AS2 like wrangler; returns (completion token, files uploaded)."""
    session = client.post(
        f"accounts/{account['id']}/workers/scripts/{script}/assets-upload-session",
        headers=auth(account["apiToken"]),
        json={"manifest": manifest(files)},
    )
    assert session.status_code == 200, session.text
    result = session.json()["result"]
    by_hash = {wrangler_hash(d, p): (d, t) for p, (d, t) in files.items()}
    completion = result["jwt"] if not result["buckets"] else None
    uploaded = 0
    for bucket in result["buckets"]:
        parts = [(h, (h, base64.b64encode(by_hash[h][0]), by_hash[h][1])) for h in bucket]
        response = client.post(
            f"accounts/{account['id']}/workers/assets/upload?base64=true",
            headers=auth(result["jwt"]),
            files=parts,
        )
        assert response.status_code in (201, 202), response.text
        uploaded += len(bucket)
        completion = response.json()["result"]["jwt"] or completion
    assert completion
    return completion, uploaded


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def test_site_with_a_worker_and_binding(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    completion, uploaded = upload_assets(client, account, "site", SITE)
    assert uploaded == 4  # index.html and copy.html share a hash
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/site?excludeScript=true&bindings_inherit=strict",
        headers=auth(account["apiToken"]),
        **upload_body(
            bindings=[{"name": "ASSETS", "type": "assets"}],
            assets={
                "jwt": completion,
                "config": {
                    "html_handling": "auto-trailing-slash",
                    "not_found_handling": "404-page",
                },
            },
        ),
    )
    assert response.status_code == 200, response.text
    code = platform.services.routing.version_code(response.json()["result"]["deployment_id"])
    assert code["has_worker"] is True
    assert code["assets_binding"] == "ASSETS"
    assert code["assets"]["config"]["not_found_handling"] == "404-page"
    entry = code["assets"]["manifest"]["/style.css"]
    assert entry["content_type"] == "text/css; charset=utf-8"
    assert code["assets"]["manifest"]["/LICENSE"]["content_type"] is None
    data, ctype = platform.services.assets.read(account["id"], entry["hash"])
    assert data == b"body{}" and ctype == "text/css; charset=utf-8"
    with TestClient(
        platform.internal_app(), headers={"x-mayfly-internal-secret": platform.internal_secret}
    ) as internal:
        got = internal.get(f"http://i/internal/v1/assets/{account['id']}/{entry['hash']}")
        assert got.content == b"body{}"
        assert got.headers["x-mayfly-content-type"] == "text/css; charset=utf-8"


def test_unchanged_files_are_not_uploaded_twice(
    client: TestClient, account: dict[str, Any]
) -> None:
    upload_assets(client, account, "site", SITE)
    _, uploaded = upload_assets(client, account, "site", SITE)
    assert uploaded == 0
    changed = dict(SITE, **{"/style.css": (b"body{color:red}", "text/css; charset=utf-8")})
    _, uploaded = upload_assets(client, account, "site", changed)
    assert uploaded == 1
    # Dedup is per account: another account uploads everything.
    other = provision(client)["account"]
    _, uploaded = upload_assets(client, other, "site", SITE)
    assert uploaded == 4


def test_assets_only_worker(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    completion, _ = upload_assets(client, account, "static", SITE)
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/static",
        headers=auth(account["apiToken"]),
        files=[
            (
                "metadata",
                (
                    None,
                    json.dumps(
                        {
                            "assets": {"jwt": completion, "config": {}},
                            "compatibility_date": "2025-01-01",
                        }
                    ),
                    None,
                ),
            )
        ],
    )
    assert response.status_code == 200, response.text
    code = platform.services.routing.version_code(response.json()["result"]["deployment_id"])
    assert code["has_worker"] is False and code["modules"] == []
    assert set(code["assets"]["manifest"]) == set(SITE)
    # Redeploy through versions: unchanged assets, the same completion flow.
    completion, uploaded = upload_assets(client, account, "static", SITE)
    assert uploaded == 0
    version = client.post(
        f"accounts/{account['id']}/workers/scripts/static/versions",
        headers=auth(account["apiToken"]),
        files=[("metadata", (None, json.dumps({"assets": {"jwt": completion}}), None))],
    )
    assert version.status_code == 200, version.text


def test_tokens_are_checked(
    client: TestClient, account: dict[str, Any], clock: ManualClock
) -> None:
    session = client.post(
        f"accounts/{account['id']}/workers/scripts/site/assets-upload-session",
        headers=auth(account["apiToken"]),
        json={"manifest": manifest(SITE)},
    ).json()["result"]
    h = session["buckets"][0][0]
    # The API token is not an upload token.
    wrong = client.post(
        f"accounts/{account['id']}/workers/assets/upload?base64=true",
        headers=auth(account["apiToken"]),
        files=[(h, (h, b"AAAA", "text/plain"))],
    )
    assert wrong.status_code == 401 and wrong.json()["errors"][0]["code"] != 10000
    # Another account's path.
    other = provision(client)["account"]
    foreign = client.post(
        f"accounts/{other['id']}/workers/assets/upload?base64=true",
        headers=auth(session["jwt"]),
        files=[(h, (h, b"AAAA", "text/plain"))],
    )
    assert foreign.status_code == 401
    # A hash the session did not ask for, and a size that does not match the manifest.
    stranger = client.post(
        f"accounts/{account['id']}/workers/assets/upload?base64=true",
        headers=auth(session["jwt"]),
        files=[("0" * 32, ("0" * 32, b"AAAA", "text/plain"))],
    )
    assert stranger.status_code == 400
    bad_size = client.post(
        f"accounts/{account['id']}/workers/assets/upload?base64=true",
        headers=auth(session["jwt"]),
        files=[(h, (h, base64.b64encode(b"nope"), "text/plain"))],
    )
    assert bad_size.status_code == 400
    # A completion token of another Worker cannot be attached; an unfinished session cannot either.
    completion, _ = upload_assets(client, account, "site", SITE)
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/elsewhere",
        headers=auth(account["apiToken"]),
        **upload_body(assets={"jwt": completion}),
    )
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 10021
    clock.advance(3700)
    expired = client.post(
        f"accounts/{other['id']}/workers/assets/upload?base64=true",
        headers=auth(session["jwt"]),
        files=[(h, (h, b"AAAA", "text/plain"))],
    )
    assert expired.status_code == 401


def test_quotas_on_temporary_accounts(client: TestClient, account: dict[str, Any]) -> None:
    path = f"accounts/{account['id']}/workers/scripts/site/assets-upload-session"
    many = {f"/f{i}.txt": {"hash": f"{i:032x}", "size": 1} for i in range(1001)}
    response = client.post(path, headers=auth(account["apiToken"]), json={"manifest": many})
    assert response.status_code == 400 and "1000" in response.json()["errors"][0]["message"]
    big = {"/big.bin": {"hash": "a" * 32, "size": 5 * 1024 * 1024 + 1}}
    response = client.post(path, headers=auth(account["apiToken"]), json={"manifest": big})
    assert response.status_code == 400
    for bad in (
        {"manifest": {"nope": {"hash": "a" * 32, "size": 1}}},
        {"manifest": {"/x": {"hash": "XYZ", "size": 1}}},
        {},
    ):
        assert client.post(path, headers=auth(account["apiToken"]), json=bad).status_code == 400


@pytest.mark.parametrize(
    "config",
    [
        {"html_handling": "bogus"},
        {"not_found_handling": "index"},
        {"run_worker_first": ["!/only-negative"]},
        {"unknown_key": 1},
        {"base_path": "docs"},
        {"base_path": "//evil.example"},
        {"base_path": "https://x/"},
        {"base_path": "/a%2f"},
        {"base_path": "/a?b"},
        {"base_path": "/a\\b"},
        {"run_worker_first": ["/*a*a*b"]},
    ],
)
def test_bad_asset_configs(
    client: TestClient, account: dict[str, Any], config: dict[str, Any]
) -> None:
    completion, _ = upload_assets(client, account, "site", SITE)
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(assets={"jwt": completion, "config": config}),
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 10021


def test_assets_binding_without_assets_is_refused(
    client: TestClient, account: dict[str, Any]
) -> None:
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(bindings=[{"name": "ASSETS", "type": "assets"}]),
    )
    assert response.status_code == 400


def test_reaper_deletes_assets(
    client: TestClient, account: dict[str, Any], platform: Platform, clock: ManualClock
) -> None:
    completion, _ = upload_assets(client, account, "site", SITE)
    client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(assets={"jwt": completion}),
    )
    clock.advance(3601)
    asyncio.run(platform.services.reaper.run_once())
    with platform.db.read() as conn:
        for table in (tables.asset_files, tables.asset_upload_sessions, tables.blobs):
            count = conn.execute(
                select(func.count()).select_from(table).where(table.c.account_id == account["id"])
            ).scalar_one()
            assert count == 0, table.name


def test_deleting_a_worker_collects_its_unreferenced_assets(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    completion, _ = upload_assets(client, account, "site", SITE)
    client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(
            assets={"jwt": completion},
            modules={"index.js": (HELLO, "application/javascript+module")},
        ),
    )
    with platform.db.begin() as conn:
        conn.execute(tables.asset_upload_sessions.delete())
    client.delete(
        f"accounts/{account['id']}/workers/scripts/site", headers=auth(account["apiToken"])
    )
    with platform.db.read() as conn:
        left = conn.execute(
            select(func.count())
            .select_from(tables.asset_files)
            .where(tables.asset_files.c.account_id == account["id"])
        ).scalar_one()
    assert left == 0


def test_asset_navigation_flags_are_allowed(client: TestClient, account: dict[str, Any]) -> None:
    completion, _ = upload_assets(client, account, "site", SITE)
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(
            compatibility_flags=["assets_navigation_prefers_asset_serving"],
            assets={"jwt": completion, "config": {"base_path": "/docs/../docs/"}},
        ),
    )
    assert response.status_code == 200, response.text


def test_redirects_and_headers_are_stored_parsed(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    """§7.5: the raw _redirects/_headers text is kept and their rules are stored in the
    asset-worker's format; skipped lines are reported in the upload's messages."""
    redirects = "/old-about /about 301\n/blog/* /posts/:splat\n/* /index.html 200\n/bad /x 404\n"
    headers = "/*\n  X-Frame-Options: DENY\n/css/*\n  Cache-Control: max-age=60\n  ! ETag\n"
    config = {"html_handling": "auto-trailing-slash", "_redirects": redirects, "_headers": headers}
    completion, _ = upload_assets(client, account, "site", SITE)
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(assets={"jwt": completion, "config": config}),
    )
    assert response.status_code == 200, response.text
    messages = [m["message"] for m in response.json()["messages"]]
    assert len(messages) == 2
    assert messages[0].startswith("Skipped in _redirects:3 (/* /index.html 200): Infinite loop")
    assert messages[1].startswith("Skipped in _redirects:4 (/bad /x 404): Valid status codes")
    stored = platform.services.routing.version_code(response.json()["result"]["deployment_id"])
    assert stored["assets"]["config"] == {
        **config,
        "redirects": {
            "version": 1,
            "staticRules": {"/old-about": {"status": 301, "to": "/about", "lineNumber": 1}},
            "rules": {"/blog/*": {"status": 302, "to": "/posts/:splat"}},
        },
        "headers": {
            "version": 2,
            "rules": {
                "/*": {"set": {"x-frame-options": "DENY"}},
                "/css/*": {"set": {"cache-control": "max-age=60"}, "unset": ["ETag"]},
            },
        },
    }


def test_unparseable_rule_files_are_deployed_without_rules(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    completion, _ = upload_assets(client, account, "site", SITE)
    config = {"_redirects": "".join(f"nonsense{i}\n" for i in range(30)), "_headers": "# none\n"}
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(assets={"jwt": completion, "config": config}),
    )
    assert response.status_code == 200, response.text
    messages = [m["message"] for m in response.json()["messages"]]
    assert len(messages) == 21 and messages[-1] == "… and 10 more in _redirects."
    stored = platform.services.routing.version_code(response.json()["result"]["deployment_id"])
    assert stored["assets"]["config"] == config


def test_upload_token_times_are_the_platforms_clock(
    client: TestClient, account: dict[str, Any], clock: ManualClock
) -> None:
    """The upload's early signature check leaves times to the service, which reads the platform's
    clock: a token issued by a clock ahead of this process's (another replica's, or a test's) is
    not refused as 'not one this platform issued' (PyJWT checked `iat` against time.time())."""
    clock.advance(120)
    completion, uploaded = upload_assets(
        client, account, "ahead", {"/a.txt": (b"ahead", "text/plain")}
    )
    assert completion and uploaded == 1
