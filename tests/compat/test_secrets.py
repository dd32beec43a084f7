"""Worker secrets with the real wrangler (spec §5.9) against `mayfly serve` with its data plane:
`secret put` (value on stdin), `list`, `delete`, the draft-Worker flow for a Worker that does not
exist yet, and the real effect: the Worker sees the secret, keeps it across redeploys, loses it
when it is deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler
from tests.compat.data_plane import plain_worker, request_worker, temporary_account_name

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

WORKER = "secret-worker"


@dataclass
class Anon:
    server: MayflyServer
    user: WranglerUser
    project: Path

    def wrangler(self, *args: str, stdin: str | None = None) -> WranglerResult:
        return run_wrangler(
            [*args, "--temporary"], self.project, self.server.env(), self.user, stdin=stdin
        )

    def secret_seen_by(self, name: str, script: str = WORKER) -> str:
        account = temporary_account_name(self.user)
        response = request_worker(self.server, account, script, "/secret", name=name)
        assert response.status_code == 200, response.text
        return response.text

    def secrets(self, *args: str) -> list[dict[str, Any]]:
        listed = self.wrangler("secret", "list", *args)
        assert listed.exit_code == 0, str(listed)
        names: list[dict[str, Any]] = json.loads(listed.stdout)
        return names


@pytest.fixture(scope="module")
def anon(mayfly_server: MayflyServer, new_user: Any, new_project: Any) -> Anon:
    anon = Anon(mayfly_server, new_user("secrets"), plain_worker(new_project, WORKER))
    deployed = anon.wrangler("deploy")
    assert deployed.exit_code == 0, str(deployed)
    return anon


@pytest.fixture(scope="module")
def put(anon: Anon) -> WranglerResult:
    return anon.wrangler("secret", "put", "MY_SECRET", stdin="s3cr3t-value\n")


def test_secret_put(anon: Anon, put: WranglerResult) -> None:
    assert put.exit_code == 0, str(put)
    assert f'Creating the secret for the Worker "{WORKER}"' in put.stdout, str(put)
    assert "Success! Uploaded secret MY_SECRET" in put.stdout
    assert "s3cr3t-value" not in put.output
    # The next request sees it (a secret change deploys a new version), without the newline.
    assert anon.secret_seen_by("MY_SECRET") == "s3cr3t-value"


def test_secret_list(anon: Anon, put: WranglerResult) -> None:
    assert anon.secrets() == [{"name": "MY_SECRET", "type": "secret_text"}]


def test_a_secret_survives_a_redeploy(anon: Anon, put: WranglerResult) -> None:
    redeployed = anon.wrangler("deploy")
    assert redeployed.exit_code == 0, str(redeployed)
    assert anon.secret_seen_by("MY_SECRET") == "s3cr3t-value"
    assert anon.secrets() == [{"name": "MY_SECRET", "type": "secret_text"}]


def test_secret_put_again_replaces_the_value(anon: Anon, put: WranglerResult) -> None:
    again = anon.wrangler("secret", "put", "MY_SECRET", stdin="second value")
    assert again.exit_code == 0, str(again)
    assert anon.secret_seen_by("MY_SECRET") == "second value"


def test_secret_delete(anon: Anon, put: WranglerResult) -> None:
    deleted = anon.wrangler("secret", "delete", "MY_SECRET")
    assert deleted.exit_code == 0, str(deleted)
    assert f"Deleting the secret MY_SECRET on the Worker {WORKER}" in deleted.stdout, str(deleted)
    assert "Success! Deleted secret MY_SECRET" in deleted.stdout
    assert anon.secret_seen_by("MY_SECRET") == "<unset>"
    assert anon.secrets() == []
    # And it stays gone after a redeploy.
    assert anon.wrangler("deploy").exit_code == 0
    assert anon.secret_seen_by("MY_SECRET") == "<unset>"


def test_secret_put_on_a_missing_worker_creates_a_draft(anon: Anon, new_project: Any) -> None:
    draft = "draft-worker"
    put = anon.wrangler("secret", "put", "DRAFT_SECRET", "--name", draft, stdin="drafted\n")
    assert put.exit_code == 0, str(put)
    assert f'There doesn\'t seem to be a Worker called "{draft}"' in put.stdout, str(put)
    assert "Using fallback value in non-interactive context: yes" in put.stdout
    assert f'Creating new Worker "{draft}"...' in put.stdout
    assert "Success! Uploaded secret DRAFT_SECRET" in put.stdout
    assert anon.secrets("--name", draft) == [{"name": "DRAFT_SECRET", "type": "secret_text"}]

    # The first real deploy of that Worker keeps the secret (keep_bindings, spec §5.1).
    project = plain_worker(new_project, draft)
    deployed = run_wrangler(["deploy", "--temporary"], project, anon.server.env(), anon.user)
    assert deployed.exit_code == 0, str(deployed)
    assert anon.secret_seen_by("DRAFT_SECRET", draft) == "drafted"


def test_secret_list_of_a_missing_worker(anon: Anon) -> None:
    listed = anon.wrangler("secret", "list", "--name", "no-such-worker")
    assert listed.exit_code == 1, str(listed)
    assert 'Worker "no-such-worker" not found.' in listed.stderr, str(listed)
