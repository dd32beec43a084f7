"""Spec §5 beyond deploy: versions, deployments, rollback, secrets, whoami, delete, base URLs.

All with a permanent `mfp_` token against one shared `mayfly serve`. KV, `secret put/delete`, tail
and assets are another issue's and are not exercised here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler

pytestmark = pytest.mark.compat

WORKER = "cmd-worker"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass
class Setup:
    server: MayflyServer
    user: WranglerUser
    project: Path
    token: str
    account_id: str
    versions: list[str]  # the two deployed versions, oldest first

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.server.env(),
            "CLOUDFLARE_API_TOKEN": self.token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
        }

    def wrangler(self, *args: str, **kwargs: Any) -> WranglerResult:
        env = {**self.env, **kwargs.pop("env", {})}
        return run_wrangler(list(args), self.project, env, self.user, **kwargs)

    def api(self, method: str, path: str) -> Any:
        response = self.server.api(method, f"accounts/{self.account_id}/workers/{path}", self.token)
        return response.json()

    def deployments(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("GET", f"scripts/{WORKER}/deployments")["result"][
            "deployments"
        ]
        return result


def printed_version(result: WranglerResult, label: str = "Current Version ID") -> str:
    found = re.search(rf"{label}: ({UUID})", result.stdout)
    assert found, f"no {label} printed\n{result}"
    return found.group(1)


@pytest.fixture(scope="module")
def setup(mayfly_server: MayflyServer, new_user: Any, new_project: Any) -> Setup:
    """A permanent account with WORKER deployed twice (the new-Worker and the versions-API paths)."""
    account = mayfly_server.create_account("acme-cmd")
    s = Setup(
        mayfly_server,
        new_user("token"),
        new_project("hello", worker_name=WORKER),
        account["api_token"],
        account["account_id"],
        [],
    )
    first = s.wrangler("deploy")
    assert first.exit_code == 0, str(first)
    second = s.wrangler("deploy", "--message", "second-deploy")
    assert second.exit_code == 0, str(second)
    s.versions = [printed_version(first), printed_version(second)]
    return s


def test_versions_list(setup: Setup) -> None:
    result = setup.wrangler("versions", "list")
    assert result.exit_code == 0, str(result)
    for vid in setup.versions:
        assert f"Version ID:  {vid}" in result.stdout, str(result)
    assert "Source:      Upload" in result.stdout
    assert "Message:     second-deploy" in result.stdout


def test_versions_view(setup: Setup) -> None:
    result = setup.wrangler("versions", "view", setup.versions[0])
    assert result.exit_code == 0, str(result)
    assert f"Version ID:  {setup.versions[0]}" in result.stdout
    assert "Handlers:             fetch" in result.stdout
    assert "Compatibility Date:   2025-01-01" in result.stdout
    assert 'env.GREETING ("world")' in result.stdout


def test_versions_view_json(setup: Setup) -> None:
    result = setup.wrangler("versions", "view", setup.versions[1], "--json")
    assert result.exit_code == 0, str(result)
    version = json.loads(result.stdout)
    assert version["id"] == setup.versions[1]
    assert version["annotations"]["workers/message"] == "second-deploy"


def test_deployments_list(setup: Setup) -> None:
    result = setup.wrangler("deployments", "list")
    assert result.exit_code == 0, str(result)
    for deployment in setup.deployments():
        assert f"(100%) {deployment['versions'][0]['version_id']}" in result.stdout, str(result)
    assert "Message:     second-deploy" in result.stdout
    # wrangler prints oldest first
    assert result.stdout.index(setup.versions[0]) < result.stdout.index(setup.versions[1])


def test_deployments_status(setup: Setup) -> None:
    result = setup.wrangler("deployments", "status")
    assert result.exit_code == 0, str(result)
    current = setup.deployments()[0]["versions"][0]["version_id"]
    assert f"(100%) {current}" in result.stdout, str(result)


def test_versions_upload_then_versions_deploy(setup: Setup) -> None:
    uploaded = setup.wrangler("versions", "upload", "--message", "staged")
    assert uploaded.exit_code == 0, str(uploaded)
    vid = printed_version(uploaded, "Worker Version ID")
    assert "Worker Startup Time: undefined" not in uploaded.stdout, str(uploaded)
    assert setup.deployments()[0]["versions"][0]["version_id"] != vid, "upload must not deploy"

    deployed = setup.wrangler("versions", "deploy", f"{vid}@100%", "-y", "--message", "promote")
    assert deployed.exit_code == 0, str(deployed)
    assert f"Deployed {WORKER} version {vid} at 100%" in deployed.stdout, str(deployed)
    latest = setup.deployments()[0]
    assert latest["versions"] == [{"version_id": vid, "percentage": 100}]
    assert latest["annotations"]["workers/message"] == "promote"


def test_rollback(setup: Setup) -> None:
    before = setup.deployments()
    target = before[1]["versions"][0]["version_id"]
    result = setup.wrangler("rollback", "--message", "roll back", "-y")
    assert result.exit_code == 0, str(result)
    assert f"Worker Version {target} has been deployed to 100% of traffic." in result.stdout
    assert printed_version(result) == target
    after = setup.deployments()
    assert len(after) == len(before) + 1
    assert after[0]["versions"] == [{"version_id": target, "percentage": 100}]
    assert after[0]["annotations"]["workers/message"] == "roll back"


def test_secret_list(setup: Setup) -> None:
    result = setup.wrangler("secret", "list")
    assert result.exit_code == 0, str(result)
    assert json.loads(result.stdout) == []


def test_secret_list_on_a_missing_worker(setup: Setup) -> None:
    result = setup.wrangler("secret", "list", "--name", "no-such-worker")
    assert result.exit_code == 1, str(result)
    # wrangler turns code 10007 into this message of its own
    assert 'Worker "no-such-worker" not found.' in result.stderr, str(result)


def test_whoami_json(setup: Setup) -> None:
    result = setup.wrangler("whoami", "--json", env={"CLOUDFLARE_ACCOUNT_ID": ""})
    assert result.exit_code == 0, str(result)
    who = json.loads(result.stdout)
    assert who["loggedIn"] is True
    assert who["authType"] == "Account API Token"
    assert [a["id"] for a in who["accounts"]] == [setup.account_id]


def test_whoami_account_roles(setup: Setup) -> None:
    result = setup.wrangler("whoami", "--account", setup.account_id)
    assert result.exit_code == 0, str(result)
    assert 'Membership roles in "acme-cmd"' in result.stdout, str(result)
    assert "- Administrator" in result.stdout


def test_base_url_with_a_trailing_slash(setup: Setup) -> None:
    """wrangler then sends /client/v4//accounts/…; the server collapses the slashes."""
    env = {"CLOUDFLARE_API_BASE_URL": setup.server.base_url + "/"}
    whoami = setup.wrangler("whoami", env=env)
    assert whoami.exit_code == 0, str(whoami)
    assert setup.account_id in whoami.stdout
    deploy = setup.wrangler("deploy", env=env)
    assert deploy.exit_code == 0, str(deploy)
    assert f"Uploaded {WORKER}" in deploy.stdout


def test_base_url_without_client_v4(setup: Setup) -> None:
    """Spec §2: wrangler works with any prefix; Mayfly answers the API at the root too."""
    result = setup.wrangler("whoami", env={"CLOUDFLARE_API_BASE_URL": setup.server.origin})
    assert result.exit_code == 0, str(result)
    assert setup.account_id in result.stdout


def test_deploy_in_agent_mode(setup: Setup) -> None:
    """With CLAUDECODE set wrangler registers a workers.dev subdomain unless the account has one
    (spec §5.6); every Mayfly account has one, so the deploy just goes through."""
    result = setup.wrangler("deploy", "--name", "agent-worker", env={"CLAUDECODE": "1"})
    assert result.exit_code == 0, str(result)
    assert "Uploaded agent-worker" in result.stdout
    assert "register a workers.dev subdomain" not in result.output
    assert "DNS records" not in result.stdout


@pytest.fixture(scope="module")
def deleted(setup: Setup) -> WranglerResult:
    deploy = setup.wrangler("deploy", "--name", "doomed")
    assert deploy.exit_code == 0, str(deploy)
    return setup.wrangler("delete", "--name", "doomed")


def test_delete(setup: Setup, deleted: WranglerResult) -> None:
    gone = setup.api("GET", "services/doomed")
    assert gone["errors"][0]["code"] == 10007, "the Worker must be deleted"
    assert deleted.exit_code == 0, str(deleted)
    assert "Successfully deleted doomed" in deleted.stdout, str(deleted)


def test_delete_again_reports_10007(setup: Setup, deleted: WranglerResult) -> None:
    result = setup.wrangler("delete", "--name", "doomed")
    assert result.exit_code == 1, str(result)
    assert "/workers/scripts/doomed/references) failed" in result.stderr, str(result)
    assert "[code: 10007]" in result.stderr, str(result)
