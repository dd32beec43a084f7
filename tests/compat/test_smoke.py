"""Issue 2 acceptance: the real wrangler deploys to `mayfly serve`, temporary and permanent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import STRACE, MayflyServer, WranglerResult, WranglerUser, run_wrangler
from tests.conftest import missing

pytestmark = pytest.mark.compat

VERSION_ID = re.compile(
    r"Current Version ID: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
WORKER = "hello-worker"


def version_id(result: WranglerResult) -> str:
    found = VERSION_ID.search(result.stdout)
    assert found, f"no version id printed\n{result}"
    return found.group(1)


@pytest.fixture(scope="module")
def anon(new_user: Any) -> WranglerUser:
    return new_user("anon")


@pytest.fixture(scope="module")
def hello(new_project: Any) -> Path:
    return new_project("hello")


@pytest.fixture(scope="module")
def first_deploy(mayfly_server: MayflyServer, anon: WranglerUser, hello: Path) -> WranglerResult:
    return run_wrangler(["deploy", "--temporary"], hello, mayfly_server.env(), anon)


@pytest.fixture(scope="module")
def second_deploy(
    mayfly_server: MayflyServer, anon: WranglerUser, hello: Path, first_deploy: WranglerResult
) -> WranglerResult:
    return run_wrangler(["deploy", "--temporary"], hello, mayfly_server.env(), anon)


@pytest.fixture(scope="module")
def permanent(mayfly_server: MayflyServer) -> dict[str, str]:
    return mayfly_server.create_account("acme-smoke")


def test_deploy_without_credentials_suggests_temporary(
    mayfly_server: MayflyServer, new_user: Any, hello: Path
) -> None:
    result = run_wrangler(["deploy"], hello, mayfly_server.env(), new_user("nocreds"))
    assert result.exit_code == 1, str(result)
    assert "rerun this command with `--temporary`" in result.stderr, str(result)
    assert result.connections in (None, []), "wrangler should fail before any HTTP call"


def test_deploy_temporary_creates_the_account_and_uploads(
    mayfly_server: MayflyServer, anon: WranglerUser, first_deploy: WranglerResult
) -> None:
    result = first_deploy
    assert result.exit_code == 0, str(result)
    assert "Solving proof-of-work challenge" in result.stderr, str(result)
    assert "Temporary account ready" in result.stderr, str(result)
    assert "(created)" in result.stderr, str(result)
    assert f"Uploaded {WORKER}" in result.stdout, str(result)
    assert 'env.GREETING ("world")' in result.stdout, str(result)
    vid = version_id(result)

    cached = anon.temporary_account()
    token, account_id = cached["account"]["apiToken"], cached["account"]["id"]
    assert token.startswith("mft_")
    assert token not in result.output, "the API token must never be printed"
    assert cached["claim"]["url"] in result.stderr
    assert anon.temporary_account_file.stat().st_mode & 0o777 == 0o600

    # The server saw the calls: the Worker, its version and its deployment exist.
    base = f"accounts/{account_id}/workers"
    service = mayfly_server.api("GET", f"{base}/services/{WORKER}", token)
    assert service.status_code == 200, service.text
    version = mayfly_server.api("GET", f"{base}/scripts/{WORKER}/versions/{vid}", token)
    assert version.status_code == 200, version.text
    assert version.json()["result"]["id"] == vid
    deployments = mayfly_server.api("GET", f"{base}/scripts/{WORKER}/deployments", token).json()
    assert [d["versions"][0]["version_id"] for d in deployments["result"]["deployments"]] == [vid]


def test_second_deploy_temporary_reuses_the_account(
    mayfly_server: MayflyServer,
    anon: WranglerUser,
    first_deploy: WranglerResult,
    second_deploy: WranglerResult,
) -> None:
    result = second_deploy
    assert result.exit_code == 0, str(result)
    assert "(reused)" in result.stderr, str(result)
    assert "Solving proof-of-work challenge" not in result.stderr, str(result)
    first, second = version_id(first_deploy), version_id(result)
    assert first != second

    cached = anon.temporary_account()["account"]
    path = f"accounts/{cached['id']}/workers/scripts/{WORKER}/deployments"
    deployments = mayfly_server.api("GET", path, cached["apiToken"]).json()["result"]["deployments"]
    assert [d["versions"][0]["version_id"] for d in deployments] == [second, first]


def test_wrangler_only_contacts_loopback(first_deploy: WranglerResult) -> None:
    """run_wrangler checks every run; here we insist the check really ran on the PoW deploy."""
    if not STRACE:
        missing("strace is not installed (apt-get install strace)")
    assert first_deploy.connections, "strace saw no connect() at all"
    assert all(a.startswith("127.") for a in first_deploy.connections), first_deploy.connections


def test_whoami_with_the_temporary_token(
    mayfly_server: MayflyServer,
    anon: WranglerUser,
    first_deploy: WranglerResult,
    new_user: Any,
    hello: Path,
) -> None:
    cached = anon.temporary_account()["account"]
    env = {**mayfly_server.env(), "CLOUDFLARE_API_TOKEN": cached["apiToken"]}
    result = run_wrangler(["whoami"], hello, env, new_user("tmptoken"))
    assert result.exit_code == 0, str(result)
    assert f"Account API Token, associated with the account {cached['name']}" in result.stdout
    assert cached["id"] in result.stdout


def test_temporary_is_refused_when_a_token_is_set(
    mayfly_server: MayflyServer, permanent: dict[str, str], new_user: Any, hello: Path
) -> None:
    env = {**mayfly_server.env(), "CLOUDFLARE_API_TOKEN": permanent["api_token"]}
    result = run_wrangler(["deploy", "--temporary"], hello, env, new_user("both"))
    assert result.exit_code == 1, str(result)
    assert "--temporary` can't be used" in result.stderr, str(result)


def test_whoami_with_a_permanent_token(
    mayfly_server: MayflyServer, permanent: dict[str, str], new_user: Any, hello: Path
) -> None:
    env = {**mayfly_server.env(), "CLOUDFLARE_API_TOKEN": permanent["api_token"]}
    result = run_wrangler(["whoami"], hello, env, new_user("whoami"))
    assert result.exit_code == 0, str(result)
    assert "Account API Token, associated with the account acme-smoke" in result.stdout, str(result)
    assert permanent["account_id"] in result.stdout


@pytest.mark.parametrize("with_account_id", [False, True], ids=["token-only", "token+account-id"])
def test_deploy_with_a_permanent_token(
    mayfly_server: MayflyServer,
    permanent: dict[str, str],
    new_user: Any,
    new_project: Any,
    with_account_id: bool,
) -> None:
    token, account_id = permanent["api_token"], permanent["account_id"]
    assert token.startswith("mfp_")
    env = {**mayfly_server.env(), "CLOUDFLARE_API_TOKEN": token}
    if with_account_id:
        env["CLOUDFLARE_ACCOUNT_ID"] = account_id
    worker = f"perm-{'with' if with_account_id else 'without'}-id"
    project = new_project("hello", worker_name=worker)
    result = run_wrangler(["deploy"], project, env, new_user(worker))
    assert result.exit_code == 0, str(result)
    assert f"Uploaded {worker}" in result.stdout, str(result)
    vid = version_id(result)
    path = f"accounts/{account_id}/workers/scripts/{worker}/versions/{vid}"
    assert mayfly_server.api("GET", path, token).status_code == 200
