"""`mayfly login`: the OAuth 2.0 device authorization grant (RFC 8628), server and CLI."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.cli import login as login_command
from mayfly.cli.main import cli
from mayfly.cli.options import ClientEnv
from mayfly.services.identity.device_auth import DeviceAuthService
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth
from tests.integration.test_claim_support import Web, cheap_password_hashing, web
from tests.unit.cli_support import app_transport

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def oauth(platform: Platform) -> Iterator[TestClient]:
    with TestClient(platform.public_app(), base_url="http://localhost:8787") as c:
        yield c


def start(oauth: TestClient) -> dict[str, Any]:
    response = oauth.post("/oauth/device/code", data={"client_id": "mayfly-cli"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def poll(oauth: TestClient, device_code: str) -> tuple[int, dict[str, Any]]:
    response = oauth.post(
        "/oauth/token",
        data={"grant_type": GRANT, "device_code": device_code, "client_id": "mayfly-cli"},
    )
    return response.status_code, response.json()


def owner(browser: Web, name: str = "acme") -> str:
    browser.signup("ada@example.com")
    made = browser.post("/dashboard/accounts", {"name": name}, page="/dashboard")
    return made.headers["location"].rsplit("/", 1)[1]


def test_device_code_shape(oauth: TestClient) -> None:
    code = start(oauth)
    assert set(code) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert code["verification_uri"] == "http://localhost:8787/device"
    assert code["verification_uri_complete"] == (
        f"http://localhost:8787/device?user_code={code['user_code']}"
    )
    assert len(code["user_code"]) == 9 and code["user_code"][4] == "-"
    assert code["expires_in"] == 600 and code["interval"] == 5
    bad = oauth.post("/oauth/device/code", data={"client_id": "someone-else"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    as_json = oauth.post("/oauth/device/code", json={"client_id": "mayfly-cli"})
    assert as_json.status_code == 200


def test_approve_in_the_browser_then_the_cli_gets_a_user_token(
    platform: Platform, oauth: TestClient, client: TestClient, clock: ManualClock
) -> None:
    code = start(oauth)
    assert poll(oauth, code["device_code"]) == (
        400,
        {"error": "authorization_pending", "error_description": "Waiting for a human to approve."},
    )
    status, body = poll(oauth, code["device_code"])  # too soon
    assert (status, body["error"]) == (400, "slow_down")
    clock.advance(10)
    with web(platform) as browser:
        visit = browser.get("/device?user_code=" + code["user_code"])
        assert visit.status_code == 303 and visit.headers["location"].startswith("/login?next=")
        account_id = owner(browser)
        confirm = browser.get(
            code["verification_uri_complete"].replace("http://localhost:8787", "")
        )
        assert confirm.status_code == 200 and code["user_code"] in confirm.text
        # Typed in lower case without the dash: the same code.
        typed = browser.get("/device?user_code=" + code["user_code"].replace("-", "").lower())
        assert typed.status_code == 200
        forged = browser.client.post(
            "/device",
            data={"user_code": code["user_code"], "decision": "approve", "account_id": account_id},
        )
        assert forged.status_code == 403  # no CSRF token
        clock.advance(10)
        assert poll(oauth, code["device_code"])[1]["error"] == "authorization_pending"
        done = browser.post(
            "/device",
            {"user_code": code["user_code"], "decision": "approve", "account_id": account_id},
            page="/device?user_code=" + code["user_code"],
        )
        assert done.status_code == 200 and "CLI approved" in done.text
    clock.advance(20)
    status, token = poll(oauth, code["device_code"])
    assert status == 200, token
    assert token["token_type"] == "Bearer" and token["access_token"].startswith("mfp_")
    assert token["account_id"] == account_id and token["account_name"] == "acme"
    assert token["email"] == "ada@example.com"
    bearer = auth(token["access_token"])
    assert client.get("user", headers=bearer).json()["result"]["email"] == "ada@example.com"
    assert client.get("user/tokens/verify", headers=bearer).json()["result"]["status"] == "active"
    assert client.get("accounts", headers=bearer).json()["result"][0]["name"] == "acme"
    # One exchange only.
    clock.advance(20)
    assert poll(oauth, code["device_code"])[1]["error"] == "invalid_grant"
    with web(platform) as browser:
        browser.login("ada@example.com")
        log = browser.get(f"/dashboard/accounts/{account_id}").text
        assert "mayfly login (device authorization)" in log and "via: device" in log


def test_denied_expired_and_malformed_requests(
    platform: Platform, oauth: TestClient, clock: ManualClock
) -> None:
    denied = start(oauth)
    with web(platform) as browser:
        owner(browser)
        browser.post(
            "/device",
            {"user_code": denied["user_code"], "decision": "deny"},
            page="/device?user_code=" + denied["user_code"],
        )
        wrong = browser.get("/device?user_code=BCDF-GHJK")
        assert wrong.status_code == 404 and "unknown, expired or already used" in wrong.text
        used = browser.get("/device?user_code=" + denied["user_code"])
        assert used.status_code == 404
    assert poll(oauth, denied["device_code"])[1]["error"] == "access_denied"

    late = start(oauth)
    clock.advance(601)
    assert poll(oauth, late["device_code"])[1]["error"] == "expired_token"
    assert poll(oauth, "not-a-device-code")[1]["error"] == "invalid_grant"
    other_grant = oauth.post(
        "/oauth/token", data={"grant_type": "password", "device_code": late["device_code"]}
    )
    assert other_grant.json()["error"] == "unsupported_grant_type"
    no_code = oauth.post("/oauth/token", data={"grant_type": GRANT, "client_id": "mayfly-cli"})
    assert no_code.json()["error"] == "invalid_request"


def test_wrong_codes_are_throttled(platform: Platform, oauth: TestClient) -> None:
    start(oauth)
    with web(platform) as browser:
        owner(browser)
        for _ in range(10):
            assert browser.get("/device?user_code=BBBB-BBBB").status_code == 404
        assert browser.get("/device?user_code=BBBB-BBBB").status_code == 429


def test_mayfly_login_and_logout(
    platform: Platform,
    client: TestClient,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with web(platform) as browser:
        account_id = owner(browser)
    approved: list[str] = []

    def approve_while_waiting(seconds: float) -> None:
        """The CLI's sleep: the first time, a human approves; every time, server time passes."""
        clock.advance(seconds)
        if approved:
            return
        user = platform.services.users.get(_only_user(platform))
        assert user is not None
        pending = _pending_code()
        platform.services.device_auth.decide(user, pending, True, account_id)
        approved.append(pending)

    monkeypatch.setattr(login_command, "sleep", approve_while_waiting)
    with app_transport(platform.public_app()) as transport:
        runner = CliRunner()
        result = runner.invoke(
            cli, ["login", "--json"], obj=ClientEnv(transport=transport), catch_exceptions=False
        )
        assert result.exit_code == 0, result.output + result.stderr
        assert "/device?user_code=" in result.stderr
        out = json.loads(result.stdout)
        assert out["email"] == "ada@example.com" and out["account_name"] == "acme"
        saved_file = Path(out["credentials_file"])
        assert stat.S_IMODE(saved_file.stat().st_mode) == 0o600
        saved = json.loads(saved_file.read_text())["accounts"]["http://localhost:8787"]
        token = saved["api_token"]
        assert token.startswith("mfp_") and saved["account_id"] == account_id
        assert client.get("user", headers=auth(token)).status_code == 200

        result = runner.invoke(cli, ["logout"], obj=ClientEnv(transport=transport))
        assert result.exit_code == 0, result.output
        assert "revoked" in result.stdout
        assert client.get("user", headers=auth(token)).status_code == 401
        assert "http://localhost:8787" not in json.loads(saved_file.read_text())["accounts"]
        again = runner.invoke(cli, ["logout", "--json"], obj=ClientEnv(transport=transport))
        assert again.exit_code == 0 and json.loads(again.stdout)["logged_out"] is False


def test_mayfly_login_reports_a_denial(
    platform: Platform, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with web(platform) as browser:
        owner(browser)

    def deny(seconds: float) -> None:
        clock.advance(seconds)
        user = platform.services.users.get(_only_user(platform))
        assert user is not None
        platform.services.device_auth.decide(user, _pending_code(), False)

    monkeypatch.setattr(login_command, "sleep", deny)
    with app_transport(platform.public_app()) as transport:
        result = CliRunner().invoke(cli, ["login", "--json"], obj=ClientEnv(transport=transport))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "access_denied"


def _only_user(platform: Platform) -> str:
    with platform.db.read() as conn:
        user_id: str = conn.execute(select(tables.users.c.id)).scalar_one()
    return user_id


# The user code of the waiting request, as the human reads it off the terminal. Only hashes are
# stored, so the tests capture codes as the server hands them out.
_codes: dict[str, str] = {}


def _pending_code() -> str:
    return _codes["last"]


@pytest.fixture(autouse=True)
def _capture_user_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    original = DeviceAuthService.start

    def start_and_remember(self: DeviceAuthService, client_id: str, client: str) -> Any:
        code = original(self, client_id, client)
        _codes["last"] = code.user_code
        return code

    monkeypatch.setattr(DeviceAuthService, "start", start_and_remember)
