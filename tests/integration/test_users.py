"""Sign-up, log-in, log-out, sessions, CSRF, brute-force protection; the dashboard and its tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.core.crypto import hash_token
from mayfly.services.core.ratelimit import SlidingWindowLimiter
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision
from tests.integration.test_claim_support import PASSWORD, cheap_password_hashing, web


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def test_sign_up_starts_a_server_side_session_in_a_safe_cookie(platform: Platform) -> None:
    with web(platform) as browser:
        response = browser.signup("Ada@Example.com", next_url="/dashboard")
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("mayfly_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        session_id = cookie.split(";")[0].split("=", 1)[1]
        page = browser.get("/dashboard")
        assert page.status_code == 200
        assert "ada@example.com" in page.text  # e-mail addresses are kept lower-case
    with platform.db.read() as conn:
        stored = conn.execute(select(tables.sessions.c.id_hash)).scalars().all()
        user = conn.execute(select(tables.users)).one()
    assert stored == [hash_token(session_id)]
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_cookies_are_secure_with_the_host_prefix_behind_https(tmp_path: Path) -> None:
    platform = Platform.create(make_settings(tmp_path, public_url="https://mayfly.example"))
    with web(platform, "https://mayfly.example") as browser:
        page = browser.get("/signup")
        assert "__Host-mayfly_csrf=" in page.headers["set-cookie"]
        assert "Secure" in page.headers["set-cookie"]
        response = browser.signup("ada@example.com")
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-mayfly_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
        assert "Domain" not in cookie
        assert browser.get("/dashboard").status_code == 200
    platform.db.dispose()


@pytest.mark.parametrize(
    ("email", "password", "status", "message"),
    [
        ("not-an-address", PASSWORD, 400, "valid e-mail address"),
        ("ada@example.com", "short", 400, "at least 10 characters"),
        ("ada@example.com", "password123", 400, "too easy to guess"),
        ("ada@example.com", "aaaaaaaaaaaa", 400, "too easy to guess"),
        ("ada@example.com", "ada@example.com", 400, "must not be your e-mail"),
    ],
)
def test_sign_up_explains_bad_input(
    platform: Platform, email: str, password: str, status: int, message: str
) -> None:
    with web(platform) as browser:
        response = browser.signup(email, password)
        assert response.status_code == status
        assert message in response.text
        assert 'value="' + email + '"' in response.text  # the form keeps what was typed


def test_a_taken_e_mail_address_is_refused(platform: Platform) -> None:
    with web(platform) as first:
        first.signup("ada@example.com")
    with web(platform) as second:
        response = second.signup("ADA@example.com ")
        assert response.status_code == 409
        assert "already exists" in response.text and "log in" in response.text


def test_one_message_for_unknown_e_mail_and_wrong_password(platform: Platform) -> None:
    with web(platform) as browser:
        browser.signup("ada@example.com")
    with web(platform) as browser:
        wrong = browser.login("ada@example.com", "not the password at all")
        unknown = browser.login("bob@example.com", "not the password at all")
        assert wrong.status_code == unknown.status_code == 401
        assert "Wrong e-mail address or password." in wrong.text
        assert "Wrong e-mail address or password." in unknown.text
        good = browser.login("ada@example.com", next_url="/device")
        assert good.status_code == 303 and good.headers["location"] == "/device"


def test_repeated_failed_log_ins_lock_the_address_for_a_while(
    platform: Platform, clock: ManualClock
) -> None:
    with web(platform) as browser:
        browser.signup("ada@example.com")
    with web(platform) as browser:
        for _ in range(5):
            assert browser.login("ada@example.com", "wrong password!").status_code == 401
        locked = browser.login("ada@example.com")  # even the right password waits
        assert locked.status_code == 429
        assert "Too many failed log-ins" in locked.text
        assert int(locked.headers["retry-after"]) > 0
        clock.advance(15 * 60 + 1)
        assert browser.login("ada@example.com").status_code == 303


def test_many_failures_from_one_address_lock_every_e_mail_it_tries(platform: Platform) -> None:
    platform.services.users.by_client = SlidingWindowLimiter(8, 15 * 60, "failed log-ins")
    with web(platform) as browser:
        for i in range(8):
            browser.login(f"user{i}@example.com", "wrong password!")
        assert browser.login("someone@example.com", "wrong password!").status_code == 429


def test_log_out_ends_the_session_on_the_server(platform: Platform) -> None:
    with web(platform) as browser:
        response = browser.signup("ada@example.com")
        session_id = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        browser.get("/dashboard")
        out = browser.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert browser.get("/dashboard").status_code == 303
    # Replaying the old cookie does not work either: the session is gone server-side.
    with TestClient(platform.public_app(), base_url="http://localhost:8787") as replay:
        replay.cookies.set("mayfly_session", session_id)
        assert replay.get("/dashboard", follow_redirects=False).status_code == 303


def test_state_changing_posts_need_a_valid_csrf_token(platform: Platform) -> None:
    with web(platform) as browser:
        browser.signup("ada@example.com")
        browser.get("/dashboard")
        # No token at all.
        missing = browser.client.post("/dashboard/accounts", data={"name": "acme"})
        assert missing.status_code == 403
        assert "another site" in missing.text
        # A token rendered for another browser (another session).
        with web(platform) as other:
            foreign = other.csrf("/signup")
        stolen = browser.client.post(
            "/dashboard/accounts", data={"name": "acme", "csrf_token": foreign}
        )
        assert stolen.status_code == 403
        # The right token, but the request comes from another origin.
        cross = browser.client.post(
            "/dashboard/accounts",
            data={"name": "acme", "csrf_token": browser.csrf("/dashboard")},
            headers={"origin": "http://evil.example"},
        )
        assert cross.status_code == 403
        # Log-out without a token leaves the session alone.
        assert browser.client.post("/logout").status_code == 403
        assert browser.get("/dashboard").status_code == 200
        assert platform.services.memberships.accounts_of(_user_id(platform)) == []
        # And the honest form works.
        ok = browser.post(
            "/dashboard/accounts",
            {"name": "acme"},
            page="/dashboard",
            headers={"origin": "http://localhost:8787"},
        )
        assert ok.status_code == 303
    # Anonymous forms too: sign-up without a token creates nobody.
    with web(platform) as anonymous:
        refused = anonymous.client.post(
            "/signup", data={"email": "eve@example.com", "password": PASSWORD}
        )
        assert refused.status_code == 403
    with platform.db.read() as conn:
        assert conn.execute(select(tables.users.c.email)).scalars().all() == ["ada@example.com"]


def _user_id(platform: Platform) -> str:
    with platform.db.read() as conn:
        user_id: str = conn.execute(select(tables.users.c.id)).scalar_one()
    return user_id


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example"])
def test_next_never_leaves_the_site(platform: Platform, target: str) -> None:
    with web(platform) as browser:
        response = browser.signup("ada@example.com", next_url=target)
        assert response.headers["location"] == "/dashboard"


def test_pages_that_need_a_user_send_visitors_to_log_in(platform: Platform) -> None:
    with web(platform) as browser:
        response = browser.get("/dashboard")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fdashboard"
        login = browser.get(response.headers["location"])
        assert 'name="next" value="/dashboard"' in login.text


def test_security_headers_on_every_page(platform: Platform) -> None:
    with web(platform) as browser:
        for path in ("/login", "/signup", "/claim/nope"):
            headers = browser.get(path).headers
            assert headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["cache-control"] == "no-store"


def test_dashboard_accounts_and_tokens(platform: Platform, client: TestClient) -> None:
    with web(platform) as browser:
        browser.signup("ada@example.com")
        created = browser.post("/dashboard/accounts", {"name": "acme"}, page="/dashboard")
        account_path = created.headers["location"]
        account_id = account_path.rsplit("/", 1)[1]
        taken = browser.post("/dashboard/accounts", {"name": "acme"}, page="/dashboard")
        assert taken.status_code == 409 and "is taken" in taken.text

        page = browser.post(
            f"{account_path}/tokens", {"name": "laptop CLI", "expires": "30"}, page=account_path
        )
        assert page.status_code == 200
        assert "shown only once" in page.text
        token = page.text.split('id="new-token">', 1)[1].split("<", 1)[0]
        assert token.startswith("mfp_")
        again = browser.get(account_path)
        assert token not in again.text and "laptop CLI" in again.text
        assert "token.created" in again.text  # the audit log

        # The token is a user token: /user and /user/tokens work with it.
        me = client.get("user", headers=auth(token)).json()["result"]
        assert me["email"] == "ada@example.com"
        assert client.get("user/tokens/verify", headers=auth(token)).json()["success"]
        listed = client.get("user/tokens", headers=auth(token)).json()["result"]
        assert [t["name"] for t in listed] == ["laptop CLI"]
        assert listed[0]["expires_on"] is not None and "value" not in listed[0]
        assert listed[0]["mayfly"] == {"account_id": account_id, "account_name": "acme"}
        assert client.get("accounts", headers=auth(token)).json()["result"][0]["id"] == account_id

        token_id = listed[0]["id"]
        revoke = browser.post(f"/dashboard/tokens/{token_id}/revoke", page=account_path)
        assert revoke.status_code == 303
        refused = client.get("user", headers=auth(token))
        assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == 9109
        assert "revoked" in browser.get(account_path).text


def test_user_tokens_api(platform: Platform, client: TestClient) -> None:
    with web(platform) as browser:
        browser.signup("ada@example.com")
        account_path = browser.post(
            "/dashboard/accounts", {"name": "acme"}, page="/dashboard"
        ).headers["location"]
        page = browser.post(f"{account_path}/tokens", {"name": "first"}, page=account_path)
        first = page.text.split('id="new-token">', 1)[1].split("<", 1)[0]

    created = client.post(
        "user/tokens",
        headers=auth(first),
        json={"name": "ci", "expires_on": "2999-01-01T00:00:00Z"},
    ).json()["result"]
    second = created["value"]
    assert second.startswith("mfp_") and created["name"] == "ci"
    assert created["expires_on"].startswith("2999-01-01")
    assert (
        client.get(f"user/tokens/{created['id']}", headers=auth(first)).json()["result"]["status"]
        == "active"
    )
    bad = client.post("user/tokens", headers=auth(first), json={"name": ""})
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == 10021
    past = client.post(
        "user/tokens", headers=auth(first), json={"name": "x", "expires_on": "2001-01-01T00:00:00Z"}
    )
    assert past.status_code == 400
    elsewhere = client.post(
        "user/tokens", headers=auth(first), json={"name": "x", "account_id": "0" * 32}
    )
    assert elsewhere.status_code == 403 and elsewhere.json()["errors"][0]["code"] == 9109

    deleted = client.delete(f"user/tokens/{created['id']}", headers=auth(first))
    assert deleted.json()["result"] == {"id": created["id"]}
    assert client.get("user", headers=auth(second)).status_code == 401
    unknown = client.delete("user/tokens/" + "f" * 32, headers=auth(first))
    assert unknown.status_code == 404

    # An account token (no user) cannot manage user tokens.
    _, operator = platform.services.accounts.create_permanent("ops")
    refused = client.get("user/tokens", headers=auth(operator))
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == 9109


def test_our_bugs_get_an_html_apology_and_a_log_without_secrets(
    platform: Platform,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(platform.services.claims, "inspect", broken)
    created = provision(client)
    token = created["claim"]["url"].rsplit("/", 1)[1]
    with web(platform) as browser:
        response = browser.get(f"/claim/{token}")
    assert response.status_code == 500
    assert "Sorry, something broke" in response.text
    assert "/claim/{token}" in caplog.text and token not in caplog.text
