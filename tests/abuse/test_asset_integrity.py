"""Static-assets integrity: bytes are checked against the hash they are uploaded under, and upload
and completion tokens die with the account's claim, its expiry, their own expiry and the
revocation of the API token that opened the session."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.resources.asset_manifest import content_matches, extension
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, upload_body
from tests.integration.test_assets import manifest, wrangler_hash
from tests.integration.test_claim_support import PASSWORD, cheap_password_hashing

X = b"<script>steal()</script>"
Y = b"<h1>the real page</h1>"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def open_session(
    client: TestClient, account_id: str, token: str, files: dict[str, bytes]
) -> dict[str, Any]:
    response = client.post(
        f"accounts/{account_id}/workers/scripts/site/assets-upload-session",
        headers=auth(token),
        json={"manifest": manifest({p: (d, "text/html") for p, d in files.items()})},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def upload(
    client: TestClient, account_id: str, jwt: str, parts: list[tuple[str, bytes]]
) -> httpx.Response:
    return client.post(
        f"accounts/{account_id}/workers/assets/upload?base64=true",
        headers=auth(jwt),
        files=[(h, (h, base64.b64encode(data), "text/html")) for h, data in parts],
    )


def stored_files(platform: Platform) -> int:
    with platform.db.read() as conn:
        count: int = conn.execute(select(func.count()).select_from(tables.asset_files)).scalar_one()
        return count


def error_code(response: httpx.Response) -> int:
    code: int = response.json()["errors"][0]["code"]
    return code


def test_the_server_hash_is_wranglers() -> None:
    # wrangler-assets.md §3.3: the empty file `empty.txt`.
    assert content_matches("f9bc91770fa5e997cbd47fba833629fc", b"", {"txt"})
    assert not content_matches("f9bc91770fa5e997cbd47fba833629fc", b"", {"css"})
    assert extension("/.hidden") == "" and extension("/a.tar.gz") == "gz"
    assert extension("/dir/README") == ""
    # Cloudflare's direct-upload guide: SHA-256 of the same text, first 32 hex digits.
    sha = hashlib.sha256(base64.b64encode(b"body{}") + b"css").hexdigest()
    assert content_matches(sha[:32], b"body{}", {"css"})
    assert content_matches(sha, b"body{}", {"css"})  # untruncated
    assert not content_matches(sha[:32], b"body{ }", {"css"})


def test_bytes_uploaded_under_another_files_hash_are_rejected(
    client: TestClient, platform: Platform
) -> None:
    account = provision(client)["account"]
    session = open_session(client, account["id"], account["apiToken"], {"/index.html": Y})
    y_hash = wrangler_hash(Y, "/index.html")
    # Same size, so that only the content check can tell.
    forged = X[: len(Y)].ljust(len(Y), b" ")
    response = upload(client, account["id"], session["jwt"], [(y_hash, forged)])
    assert response.status_code == 400, response.text
    assert error_code(response) == 10021
    assert "do not match" in response.json()["errors"][0]["message"]
    assert stored_files(platform) == 0
    # Single-file mode (AS3, raw bytes) checks too.
    raw = client.post(
        f"accounts/{account['id']}/workers/assets/upload/{y_hash}",
        headers={**auth(session["jwt"]), "content-type": "text/html"},
        content=forged,
    )
    assert raw.status_code == 400 and error_code(raw) == 10021
    assert stored_files(platform) == 0
    # A bucket with one good and one forged file stores neither.
    session = open_session(
        client, account["id"], account["apiToken"], {"/index.html": Y, "/x.html": X}
    )
    mixed = [(y_hash, Y), (wrangler_hash(X, "/x.html"), Y[: len(X)].ljust(len(X), b" "))]
    assert upload(client, account["id"], session["jwt"], mixed).status_code == 400
    assert stored_files(platform) == 0
    # The real bytes go through.
    good = upload(
        client, account["id"], session["jwt"], [(y_hash, Y), (wrangler_hash(X, "/x.html"), X)]
    )
    assert good.status_code == 201, good.text
    assert platform.services.assets.read(account["id"], y_hash)[0] == Y


def test_the_extension_is_part_of_the_hash(client: TestClient) -> None:
    """The same bytes under a hash made for another extension are refused."""
    account = provision(client)["account"]
    session = open_session(client, account["id"], account["apiToken"], {"/page.html": Y})
    as_css = wrangler_hash(Y, "/page.css")
    with_right_hash = upload(client, account["id"], session["jwt"], [(as_css, Y)])
    assert with_right_hash.status_code == 400  # not in this manifest at all
    assert (
        upload(
            client, account["id"], session["jwt"], [(wrangler_hash(Y, "/page.html"), Y)]
        ).status_code
        == 201
    )


def deploy_with_assets(
    client: TestClient, account: dict[str, Any], token: str, jwt: str
) -> httpx.Response:
    return client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(token),
        **upload_body(assets={"jwt": jwt, "config": {}}),
    )


def claim(platform: Platform, provisioned: dict[str, Any], email: str = "ada@example.com") -> Any:
    user = platform.services.users.sign_up(email, PASSWORD)
    claim_token = provisioned["claim"]["url"].rsplit("/", 1)[1]
    asyncio.run(platform.services.claims.keep(claim_token, user))
    return user


def test_upload_and_completion_tokens_die_with_the_claim(
    client: TestClient, platform: Platform
) -> None:
    provisioned = provision(client)
    account = provisioned["account"]
    pending = open_session(client, account["id"], account["apiToken"], {"/index.html": Y})
    done = open_session(client, account["id"], account["apiToken"], {"/a.html": X})
    assert (
        upload(client, account["id"], done["jwt"], [(wrangler_hash(X, "/a.html"), X)]).status_code
        == 201
    )
    completion = open_session(client, account["id"], account["apiToken"], {"/a.html": X})
    assert completion["buckets"] == []
    user = claim(platform, provisioned)
    late = upload(client, account["id"], pending["jwt"], [(wrangler_hash(Y, "/index.html"), Y)])
    assert late.status_code == 401, late.text
    assert error_code(late) == 10002  # "claimed by a human"
    # The new owner deploys with a token of their own; the agent's completion token is dead.
    _, token = platform.services.user_tokens.create(user, account["id"], "laptop")
    response = deploy_with_assets(client, account, token, completion["jwt"])
    assert response.status_code == 401 and error_code(response) == 10002
    fresh = open_session(client, account["id"], token, {"/a.html": X})
    assert deploy_with_assets(client, account, token, fresh["jwt"]).status_code == 200


def test_upload_tokens_die_with_the_account(tmp_path: Path, clock: ManualClock) -> None:
    platform = Platform.create(make_settings(tmp_path, temporary_ttl=600), clock=clock)
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        _expiries(platform, client, clock)
    platform.db.dispose()


def _expiries(platform: Platform, client: TestClient, clock: ManualClock) -> None:
    account = provision(client)["account"]
    session = open_session(client, account["id"], account["apiToken"], {"/index.html": Y})
    clock.advance(601)  # the account expired; the upload token itself has most of an hour left
    dead = upload(client, account["id"], session["jwt"], [(wrangler_hash(Y, "/index.html"), Y)])
    assert dead.status_code == 401 and error_code(dead) == 10001, dead.text


def test_upload_tokens_expire(client: TestClient, platform: Platform, clock: ManualClock) -> None:
    owned, token = platform.services.accounts.create_permanent("keeper")
    session = open_session(client, owned.id, token, {"/index.html": Y})
    clock.advance(3601)
    expired = upload(client, owned.id, session["jwt"], [(wrangler_hash(Y, "/index.html"), Y)])
    assert expired.status_code == 401 and error_code(expired) == 10020
    assert "expired" in expired.json()["errors"][0]["message"]


def test_upload_tokens_die_with_the_revoked_api_token(
    client: TestClient, platform: Platform
) -> None:
    provisioned = provision(client)
    account = provisioned["account"]
    user = claim(platform, provisioned)
    info, token = platform.services.user_tokens.create(user, account["id"], "ci")
    session = open_session(client, account["id"], token, {"/index.html": Y})
    platform.services.user_tokens.revoke(user, info.id)
    dead = upload(client, account["id"], session["jwt"], [(wrangler_hash(Y, "/index.html"), Y)])
    assert dead.status_code == 401, dead.text
    assert "revoked" in dead.json()["errors"][0]["message"]
    assert stored_files(platform) == 0
