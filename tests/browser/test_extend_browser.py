"""A human in Chromium extends an agent's temporary account; the agent's `whoami` sees it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, Live, screenshot

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
DAY = 24 * 3600


@pytest.fixture
def serve_settings() -> dict[str, Any]:
    # Two days a time, at most three days from creation: the second extension hits the ceiling.
    return {"extension_seconds": 2 * DAY, "extensions_max": 5, "extension_max_lifetime": 3 * DAY}


def agent(live: Live, home: Path, cwd: Path, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"))
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mayfly"), *args, "--json", "--api-url", live.url],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_a_logged_in_human_extends_and_the_agent_sees_it(
    live: Live, page: Page, tmp_path: Path
) -> None:
    project = tmp_path / "hello"
    shutil.copytree(ROOT / "examples" / "hello", project)
    home = tmp_path / "agent"
    deployed = agent(live, home, project, "deploy", "--temporary")
    before = agent(live, home, project, "whoami")
    assert before["kind"] == "temporary" and before["claim_status"] == "unclaimed"
    first = datetime.fromisoformat(before["expires_at"])
    live.platform.services.users.sign_up("rev@example.com", PASSWORD)

    page.goto(deployed["claim_url"])
    expect(page.get_by_role("button", name=f"Extend {before['account_name']}")).to_have_count(0)
    page.locator("#login-email").fill("rev@example.com")
    page.locator("#login-password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    extend = page.get_by_role("button", name=f"Extend {before['account_name']}")
    expect(extend).to_be_visible()
    extend.click()
    expect(page.get_by_role("status")).to_contain_text("Extended")
    screenshot(page, "claim-extended.png")

    after = agent(live, home, project, "whoami")
    assert datetime.fromisoformat(after["expires_at"]) - first == timedelta(seconds=2 * DAY)
    assert after["claim_status"] == "unclaimed" and after["account_id"] == before["account_id"]

    # The second extension stops at the ceiling: three days from creation, and no further.
    page.get_by_role("button", name=f"Extend {before['account_name']}").click()
    expect(page.get_by_role("status")).to_contain_text("Extended")
    expect(page.get_by_text("cannot be extended any further")).to_be_visible()
    expect(page.get_by_role("button", name=f"Extend {before['account_name']}")).to_have_count(0)
    ceiling = agent(live, home, project, "whoami")
    created = first - timedelta(seconds=3600)
    assert datetime.fromisoformat(ceiling["expires_at"]) == created + timedelta(seconds=3 * DAY)
    # The agent can still deploy with its token and URLs.
    redeployed = agent(live, home, project, "deploy")
    assert redeployed["url"] == deployed["url"]
