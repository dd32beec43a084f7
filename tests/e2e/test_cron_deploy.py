"""`[triggers] crons` in `mayfly deploy`: set with the Worker, left alone when the project does not
say, cleared by an empty list; a bad expression stops the deploy before anything is uploaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Agent

pytestmark = pytest.mark.e2e

WORKER = "export default { fetch() { return new Response('hi'); }, scheduled() {} };\n"


def project(root: Path, triggers: str | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = 'name = "ticker"\nmain = "index.js"\ncompatibility_date = "2025-01-01"\n'
    if triggers is not None:
        config += f"\n[triggers]\ncrons = {triggers}\n"
    (root / "wrangler.toml").write_text(config)
    (root / "index.js").write_text(WORKER)
    return root


def test_crons_deploy_with_the_worker_and_an_empty_list_clears_them(
    agent: Agent, tmp_path: Path
) -> None:
    root = tmp_path / "ticker"
    run = agent.run(
        "deploy",
        "--temporary",
        "--json",
        cwd=project(root, '["*/5 * * * *", "0 17 * * sun"]'),
    )
    assert run.exit_code == 0, run
    assert run.json()["crons"] == ["*/5 * * * *", "0 17 * * sun"]
    human = agent.run("deploy", "--temporary", cwd=root)
    assert human.exit_code == 0, human
    assert "*/5 * * * *, 0 17 * * sun" in human.stdout + human.stderr
    untouched = agent.run("deploy", "--temporary", "--json", cwd=project(root, None))
    assert untouched.exit_code == 0, untouched
    assert untouched.json()["crons"] is None
    cleared = agent.run("deploy", "--temporary", "--json", cwd=project(root, "[]"))
    assert cleared.exit_code == 0, cleared
    assert cleared.json()["crons"] == []


def test_a_bad_cron_stops_the_deploy_before_the_upload(agent: Agent, tmp_path: Path) -> None:
    run = agent.run(
        "deploy", "--temporary", "--json", cwd=project(tmp_path / "bad", '["61 * * * *"]')
    )
    assert run.exit_code != 0, run
    assert "61" in run.stdout + run.stderr
    assert "triggers.crons" in run.stdout + run.stderr
