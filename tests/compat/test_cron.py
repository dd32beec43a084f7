"""Cron triggers with the real wrangler: `[triggers] crons` deploys cleanly (no "only partially
updated"), the cron fires within the test (its scheduled() handler writes to KV, read back through
the Worker), and `wrangler triggers deploy` replaces the schedules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerUser, run_wrangler, running_server
from tests.compat.data_plane import request_worker, temporary_account_name

pytestmark = pytest.mark.compat

WORKER = """
export default {
  async fetch(request, env) {
    return new Response((await env.CACHE.get("last")) ?? "<missing>");
  },
  async scheduled(controller, env, ctx) {
    await env.CACHE.put("last", `${controller.cron} @ ${controller.scheduledTime}`);
  },
};
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MayflyServer]:
    extra = ["--cron-tick", "1"]
    directory = tmp_path_factory.mktemp("server-cron")
    with running_server(directory, runtime=True, extra_args=extra) as server:
        yield server


def project(root: Path, crons: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wrangler.toml").write_text(
        'name = "cron-worker"\nmain = "index.js"\ncompatibility_date = "2025-01-01"\n\n'
        f'[triggers]\ncrons = {crons}\n\n[[kv_namespaces]]\nbinding = "CACHE"\n'
    )
    (root / "index.js").write_text(WORKER)
    return root


def schedules(server: MayflyServer, user: WranglerUser) -> list[str]:
    account = user.temporary_account()["account"]
    answer = server.api(
        "GET",
        f"accounts/{account['id']}/workers/scripts/cron-worker/schedules",
        account["apiToken"],
    )
    assert answer.status_code == 200, answer.text
    return [s["cron"] for s in answer.json()["result"]["schedules"]]


def test_wrangler_deploys_crons_that_fire_and_triggers_deploy_replaces_them(
    server: MayflyServer, new_user: Any, tmp_path: Path
) -> None:
    user: WranglerUser = new_user("cron")
    root = project(tmp_path / "cron-worker", '["* * * * *"]')
    deployed = run_wrangler(["deploy", "--temporary"], root, server.env(), user, timeout=180)
    assert deployed.exit_code == 0, str(deployed)
    assert "partially" not in deployed.output, str(deployed)
    assert "schedule: * * * * *" in deployed.output, str(deployed)
    assert schedules(server, user) == ["* * * * *"]

    account = temporary_account_name(user)
    deadline = time.monotonic() + 150  # the next whole minute, on a loaded machine
    seen = "<missing>"
    while time.monotonic() < deadline:
        seen = request_worker(server, account, "cron-worker", "/").text
        if seen != "<missing>":
            break
        time.sleep(1)
    assert seen.startswith("* * * * * @ "), seen
    assert int(seen.rsplit(" ", 1)[1]) % 60_000 == 0

    cached = user.temporary_account()["account"]
    token_env = {
        **server.env(),
        "CLOUDFLARE_API_TOKEN": cached["apiToken"],
        "CLOUDFLARE_ACCOUNT_ID": cached["id"],
    }
    project(root, '["*/30 * * * *", "0 17 * * sun"]')
    triggered = run_wrangler(["triggers", "deploy"], root, token_env, user)
    assert triggered.exit_code == 0, str(triggered)
    assert "partially" not in triggered.output, str(triggered)
    assert schedules(server, user) == ["*/30 * * * *", "0 17 * * sun"]

    project(root, '["61 * * * *"]')
    refused = run_wrangler(["triggers", "deploy"], root, token_env, user)
    assert refused.exit_code != 0, str(refused)
    assert "10021" in refused.output, str(refused)
    assert schedules(server, user) == ["*/30 * * * *", "0 17 * * sun"]
