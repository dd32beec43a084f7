"""An agent's journey with the real CLI against a real server (DESIGN §1)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    Agent,
    Server,
    running_server,
    write_project,
)

pytestmark = pytest.mark.e2e


def first_200(server: Server, url: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = server.get_worker(url)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_deploy_reuse_and_whoami(agent: Agent, server: Server, tmp_path: Path) -> None:
    hello = write_project(tmp_path / "hello", "hello")
    run = agent.run("deploy", "--temporary", "--json", cwd=hello)
    assert run.exit_code == 0, run
    first = run.json()
    assert first["created_or_reused"] == "created"
    assert first["api_token"].startswith("mft_")
    account = first["account_name"]
    assert first["url"] == f"http://hello.{account}.localhost:{server.workers_port}"
    assert first["claim_url"].startswith(f"http://localhost:{server.api_port}/claim/")
    assert "Solving proof-of-work challenge" in run.stderr

    (hello / "src" / "lib" / "render.js").write_text(
        "export const render = (greeting) => `${greeting} hello, version 2`;\n"
    )
    run = agent.run("deploy", "--temporary", "--json", cwd=hello)
    assert run.exit_code == 0, run
    second = run.json()
    assert second["created_or_reused"] == "reused"
    assert second["account_id"] == first["account_id"]
    assert second["version_id"] != first["version_id"]
    assert "Solving proof-of-work challenge" not in run.stderr

    other = write_project(tmp_path / "other", "other")
    run = agent.run("deploy", "--temporary", "--json", cwd=other)
    assert run.exit_code == 0, run
    third = run.json()
    assert third["created_or_reused"] == "reused"
    assert "api_token" not in third
    assert third["account_id"] == first["account_id"]
    assert third["url"] == f"http://other.{account}.localhost:{server.workers_port}"

    run = agent.run("whoami", "--json", cwd=tmp_path)
    assert run.exit_code == 0, run
    who = run.json()
    assert who["source"] == "temporary"
    assert (who["account_id"], who["account_name"]) == (first["account_id"], account)
    assert who["claim_url"] == first["claim_url"]
    assert who["seconds_left"] > 0
    assert "api_token" not in who

    run = agent.run("whoami", cwd=tmp_path)
    assert run.exit_code == 0, run
    assert account in run.stdout and first["claim_url"] in run.stdout
    assert first["api_token"] not in run.stdout + run.stderr


def test_without_credentials_the_hint_says_temporary(agent: Agent, tmp_path: Path) -> None:
    hello = write_project(tmp_path / "hello", "hello")
    run = agent.run("deploy", cwd=hello)
    assert run.exit_code == 1, run
    assert "rerun this command with `--temporary`" in run.stderr
    run = agent.run("deploy", "--json", cwd=hello)
    assert run.exit_code == 1
    assert run.json()["error"]["code"] == "no_credentials"


def test_temporary_with_a_token_is_a_usage_error(agent: Agent, tmp_path: Path) -> None:
    hello = write_project(tmp_path / "hello", "hello")
    run = agent.run("deploy", "--temporary", cwd=hello, env={"MAYFLY_API_TOKEN": "mfp_x"})
    assert run.exit_code == 2, run


def test_the_worker_serves_and_a_redeploy_serves_at_once(
    agent: Agent, server: Server, tmp_path: Path
) -> None:
    hello = write_project(tmp_path / "hello", "hello", message="hello from")
    run = agent.run("deploy", "--temporary", "--json", cwd=hello)
    assert run.exit_code == 0, run
    deployed = run.json()
    response = first_200(server, deployed["url"])
    assert response.status_code == 200, response.text
    assert response.text == "hello from hello"

    (hello / "src" / "lib" / "render.js").write_text(
        "export const render = (greeting) => `${greeting} hello, changed`;\n"
    )
    run = agent.run("deploy", "--temporary", "--json", cwd=hello)
    assert run.exit_code == 0, run
    # The deploy returns once every shard dropped the old version: the next request is new code.
    response = server.get_worker(deployed["url"])
    assert (response.status_code, response.text) == (200, "hello from hello, changed")

    other = write_project(tmp_path / "other", "other", message="hi from")
    run = agent.run("deploy", "--temporary", "--json", cwd=other)
    assert run.exit_code == 0, run
    assert run.json()["account_id"] == deployed["account_id"]
    response = first_200(server, run.json()["url"])
    assert (response.status_code, response.text) == (200, "hi from other")


def test_after_the_ttl_a_new_account_is_provisioned(tmp_path: Path) -> None:
    with running_server(tmp_path / "server", ttl=6, runtime=True) as server:
        agent = Agent(tmp_path / "home", server)
        hello = write_project(tmp_path / "hello", "hello")
        run = agent.run("deploy", "--temporary", "--json", cwd=hello)
        assert run.exit_code == 0, run
        first = run.json()
        # Its end, as the server sees it (the data plane checks expires_at on every request).
        deadline = time.monotonic() + 60
        while server.get_worker(first["url"]).status_code != 410:
            assert time.monotonic() < deadline, "the temporary account never expired"
            time.sleep(0.1)

        run = agent.run("deploy", "--temporary", "--json", cwd=hello)
        assert run.exit_code == 0, run
        second = run.json()
        assert f"The temporary account {first['account_name']} expired" in run.stderr
        assert second["created_or_reused"] == "created"
        assert second["account_id"] != first["account_id"]
        assert second["api_token"] != first["api_token"]
        assert server.get_worker(first["url"]).status_code == 410
        assert first_200(server, second["url"]).text == "hello from hello"
