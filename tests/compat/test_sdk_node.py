"""The official `cloudflare` npm SDK (pinned in package.json's devDependencies) as a client of
`mayfly serve`: tests/compat/sdk_node_client.mjs drives every method of the resources Mayfly
serves (its node:assert checks fail the run) with node_modules' Node 22."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.compat.conftest import NODE, ROOT, MayflyServer

pytestmark = pytest.mark.compat

CLIENT = Path(__file__).resolve().parent / "sdk_node_client.mjs"
STEPS = [
    "accounts",
    "scripts",
    "settings",
    "secrets",
    "versions-deployments",
    "schedules-subdomain-tail",
    "kv",
    "delete",
]


def test_the_npm_sdk_drives_every_method(mayfly_server: MayflyServer) -> None:
    if not (ROOT / "node_modules" / "cloudflare" / "package.json").exists():
        pytest.fail("node_modules/cloudflare is missing: run scripts/setup")
    account = mayfly_server.create_account("sdk-node")
    done = subprocess.run(
        [str(NODE), str(CLIENT)],
        cwd=ROOT,
        env={
            "PATH": str(NODE.parent),
            "MAYFLY_BASE_URL": mayfly_server.base_url,
            "MAYFLY_TOKEN": account["api_token"],
            "MAYFLY_ACCOUNT_ID": account["account_id"],
            "MAYFLY_ACCOUNT_NAME": account["name"],
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"steps": STEPS}
