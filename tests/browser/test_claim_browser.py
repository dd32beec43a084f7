"""A human in Chromium: claim and keep, claim and move (with a rename), approve `mayfly login`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, Live, screenshot
from tests.conftest import auth

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"


def existing_user(live: Live, email: str, account: str) -> tuple[str, str]:
    """A user who already owns an account; returns (account id, an API token for it)."""
    svc = live.platform.services
    user = svc.users.sign_up(email, PASSWORD)
    owned = svc.memberships.create_account(user, account)
    _, token = svc.user_tokens.create(user, owned.id, "setup")
    return owned.id, token


def log_in(page: Page, email: str) -> None:
    page.locator("#login-email").fill(email)
    page.locator("#login-password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_claim_sign_up_and_keep(live: Live, page: Page) -> None:
    created = live.provision()
    account, token = created["account"], created["account"]["apiToken"]
    name = account["name"]
    live.deploy(account["id"], token, "hello")
    live.deploy(account["id"], token, "api")
    live.kv(account["id"], token, "sessions", {"a": "1", "b": "2"})
    claim_url = created["claim"]["url"]

    response = page.goto(claim_url)
    assert response is not None and response.headers["referrer-policy"] == "no-referrer"
    expect(page.get_by_role("heading", name=f"Claim {name}")).to_be_visible()
    hello_url = f"http://hello.{name}.localhost:{live.workers_port}"
    expect(page.get_by_role("link", name=hello_url)).to_be_visible()
    expect(page.get_by_role("cell", name="sessions")).to_be_visible()
    countdown = page.locator("[data-countdown]")
    before = countdown.inner_text()
    expect(countdown).not_to_have_text(before, timeout=3000)  # JavaScript makes it tick
    screenshot(page, "claim-page.png", readme=True)

    page.locator("#signup-email").fill("ada@example.com")
    page.locator("#signup-password").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url(claim_url)
    expect(page.get_by_text("Keep it as a new account")).to_be_visible()
    screenshot(page, "claim-page-logged-in.png")
    page.get_by_role("button", name=f"Claim {name}").click()
    page.wait_for_url("**/dashboard/accounts/*?claimed=1")
    expect(page.get_by_text(f"You now own {name}")).to_be_visible()
    expect(page.get_by_text("account.claimed")).to_be_visible()

    page.goto(live.url + "/dashboard")
    expect(page.get_by_role("link", name=hello_url)).to_be_visible()
    expect(page.locator(".badge.permanent")).to_be_visible()
    screenshot(page, "dashboard.png")

    assert live.serves(f"hello.{name}.localhost") == "ok"
    served = live.get_worker(hello_url)
    assert served.status_code == 200 and served.text == "hello hello"
    with live.api() as api:
        refused = api.get("accounts", headers=auth(token))
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == 10002


def test_claim_log_in_and_move_with_a_rename(live: Live, page_without_javascript: Page) -> None:
    page = page_without_javascript  # the whole claim works with plain HTML forms
    acme_id, acme_token = existing_user(live, "grace@example.com", "acme")
    live.deploy(acme_id, acme_token, "hello")
    live.kv(acme_id, acme_token, "cache", {})
    created = live.provision()
    temp, token = created["account"], created["account"]["apiToken"]
    live.deploy(temp["id"], token, "hello")
    live.deploy(temp["id"], token, "api")
    cache = live.kv(temp["id"], token, "cache", {"greeting": "hi there"})
    port = live.workers_port

    page.goto(created["claim"]["url"])
    log_in(page, "grace@example.com")
    page.wait_for_url(created["claim"]["url"])
    page.locator("#into").select_option(label="acme")
    page.get_by_role("button", name="Preview the move").click()
    expect(page.get_by_role("heading", name=f"Move {temp['name']} into acme")).to_be_visible()
    expect(page.get_by_text(f"http://hello.{temp['name']}.localhost:{port}")).to_be_visible()
    expect(page.get_by_text(f"http://hello-2.acme.localhost:{port}")).to_be_visible()
    expect(page.get_by_text("name taken")).to_be_visible()
    expect(page.get_by_text("title taken")).to_be_visible()
    page.locator('input[name="rename:hello"]').fill("greeter")
    page.locator(f'input[name="title:{cache}"]').fill("cache-2")
    page.get_by_role("button", name="Update preview").click()
    expect(page.get_by_text(f"http://greeter.acme.localhost:{port}")).to_be_visible()
    screenshot(page, "claim-move-preview.png")
    page.get_by_role("button", name="Claim and move").click()
    page.wait_for_url(f"**/dashboard/accounts/{acme_id}?merged=1")
    for worker in ("greeter", "api", "hello"):
        expect(
            page.get_by_role("link", name=f"http://{worker}.acme.localhost:{port}")
        ).to_be_visible()
    expect(page.get_by_role("cell", name="cache-2")).to_be_visible()
    expect(page.get_by_text("account.merged")).to_be_visible()
    screenshot(page, "dashboard-after-move.png")

    for worker in ("greeter", "api", "hello"):
        assert live.serves(f"{worker}.acme.localhost") == "ok"
    moved = live.route(f"hello.{temp['name']}.localhost")
    assert moved.status == "moved" and f"http://greeter.acme.localhost:{port}" in (
        moved.message or ""
    )
    gone = live.get_worker(f"http://hello.{temp['name']}.localhost:{port}")
    assert gone.status_code == 410, "the dispatcher renders 410 with route.message for 'moved'"
    assert f"greeter.acme.localhost:{port}" in gone.text
    assert live.get_worker(f"http://greeter.acme.localhost:{port}").text == "hello hello"
    with live.api() as api:
        value = api.get(
            f"accounts/{acme_id}/storage/kv/namespaces/{cache}/values/greeting",
            headers=auth(acme_token),
        )
        assert value.text == "hi there"
        assert api.get("accounts", headers=auth(token)).json()["errors"][0]["code"] == 10002


def test_device_login_approved_in_the_browser(live: Live, page: Page, tmp_path: Path) -> None:
    acme_id, _ = existing_user(live, "ada@example.com", "acme")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    with subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "mayfly"), "login", "--json", "--api-url", live.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as cli:
        assert cli.stderr is not None
        url = ""
        for line in cli.stderr:
            if "/device?user_code=" in line:
                url = line.strip()
                break
        assert url.startswith(live.url + "/device?user_code="), url
        code = url.rsplit("=", 1)[1]

        page.goto(url)  # not logged in yet: log in, then back to the approval page
        log_in(page, "ada@example.com")
        expect(page.get_by_role("heading", name="Approve this CLI?")).to_be_visible()
        expect(page.get_by_text(code)).to_be_visible()
        page.locator("#account_id").select_option(label="acme")
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("heading", name="CLI approved")).to_be_visible()
        out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    result = json.loads(out)
    assert result["email"] == "ada@example.com" and result["account_id"] == acme_id
    saved = Path(result["credentials_file"])
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    token = json.loads(saved.read_text())["accounts"][live.url]["api_token"]
    with httpx.Client(base_url=live.url + "/client/v4/") as api:
        me = api.get("user", headers=auth(token))
    assert me.status_code == 200 and me.json()["result"]["email"] == "ada@example.com"
