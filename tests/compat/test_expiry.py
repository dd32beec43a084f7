"""Spec §4.7: a temporary account the server has expired, seen through wrangler's cache."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import (
    MayflyServer,
    WranglerResult,
    WranglerUser,
    run_wrangler,
    running_server,
)

pytestmark = pytest.mark.compat

TTL = 5


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MayflyServer]:
    """A server whose temporary accounts live TTL seconds (and a reaper that runs every second)."""
    directory = tmp_path_factory.mktemp("server-ttl")
    extra = ["--temporary-ttl", str(TTL), "--reaper-interval", "1"]
    with running_server(directory, extra_args=extra) as server:
        yield server


@pytest.fixture(scope="module")
def expired(
    short_lived: MayflyServer, new_user: Any, new_project: Any
) -> tuple[WranglerUser, Path, dict[str, Any]]:
    """A user whose cached temporary account has expired on the server; returns the old cache."""
    user, project = new_user("expiring"), new_project("hello")
    deploy = run_wrangler(["deploy", "--temporary"], project, short_lived.env(), user)
    assert deploy.exit_code == 0, str(deploy)
    cached = user.temporary_account()
    # Its end, as the server tells wrangler (10001 for its token; the same once reaped).
    account = cached["account"]
    verify = f"accounts/{account['id']}/tokens/verify"
    deadline = time.monotonic() + 60
    while (answer := short_lived.api("GET", verify, account["apiToken"])).status_code == 200:
        assert time.monotonic() < deadline, "the temporary account never expired"
        time.sleep(0.1)
    assert answer.json()["errors"][0]["code"] == 10001, answer.text
    return user, project, cached


def _pretend_still_valid(user: WranglerUser) -> None:
    """The server deleted the account while wrangler's cache still says it is valid."""
    text = user.temporary_account_file.read_text()
    user.temporary_account_file.write_text(
        re.sub(r'expiresAt = "[^"]*"', 'expiresAt = "2099-01-01T00:00:00Z"', text)
    )


def _assert_clean_expiry_message(result: WranglerResult) -> None:
    assert result.exit_code == 1, str(result)
    assert "This temporary account has expired" in result.stderr, str(result)
    assert "[code: 10001]" in result.stderr, str(result)
    assert "deploy --temporary" in result.stderr
    # code 10000 would make wrangler run whoami, fail again and print a stack trace (run 22)
    assert "error handler also failed" not in result.output
    assert "Getting User settings" not in result.stdout


def test_deploy_with_a_stale_cache_gets_the_clean_10001_message(
    short_lived: MayflyServer, expired: tuple[WranglerUser, Path, dict[str, Any]]
) -> None:
    user, project, cached = expired
    original = user.temporary_account_file.read_text()
    _pretend_still_valid(user)
    try:
        result = run_wrangler(["deploy", "--temporary"], project, short_lived.env(), user)
        assert "(reused)" in result.stderr, str(result)
        assert (
            f"/accounts/{cached['account']['id']}/workers/services/hello-worker) failed"
            in result.stderr
        )
        _assert_clean_expiry_message(result)
    finally:
        user.temporary_account_file.write_text(original)


def test_the_dead_token_as_cloudflare_api_token(
    short_lived: MayflyServer, expired: tuple[WranglerUser, Path, dict[str, Any]], new_user: Any
) -> None:
    _, project, cached = expired
    env = {**short_lived.env(), "CLOUDFLARE_API_TOKEN": cached["account"]["apiToken"]}
    result = run_wrangler(["whoami"], project, env, new_user("dead-token"))
    assert "/user/tokens/verify) failed" in result.stderr, str(result)
    assert result.exit_code == 1, str(result)
    assert "[code: 10001]" in result.stderr, str(result)
    assert "error handler also failed" not in result.output


def test_an_expired_cache_makes_a_new_account(
    short_lived: MayflyServer, expired: tuple[WranglerUser, Path, dict[str, Any]]
) -> None:
    user, project, cached = expired
    result = run_wrangler(["deploy", "--temporary"], project, short_lived.env(), user)
    assert result.exit_code == 0, str(result)
    assert "(created)" in result.stderr, str(result)
    assert user.temporary_account()["account"]["id"] != cached["account"]["id"]
