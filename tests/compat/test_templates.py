"""Shapes of real-world Worker projects (docs/compatibility.md) that once failed, deployed both ways
a user would: `wrangler deploy --temporary` and `mayfly deploy --temporary`, then requested.

- wasm-modules: a `.wasm` import (and an inlined `.html`). wrangler uploads the WebAssembly as a
  module named `./<sha1>-add.wasm`, which the server refused ("'.' segments"); `mayfly deploy`'s
  esbuild had no loader for `.wasm`.
- node-builtins: nodejs_compat with Node built-ins under bare names, imported (`os`, `fs`) and
  required from CommonJS (`require("crypto")`, as jsonwebtoken and pg do): `mayfly deploy` could
  not resolve `os`/`fs`, and a bundled `require()` threw "Dynamic require … is not supported".
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerUser, run_wrangler
from tests.compat.data_plane import request_worker, temporary_account_name
from tests.serve import MAYFLY, server_environment

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

NODE_BUILTINS_ANSWER = {
    "eol": "\n",
    "fs": "function",
    "sha": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "emitted": "ok",
}


@pytest.fixture(scope="module")
def user(new_user: Any) -> WranglerUser:
    return new_user("templates")


def wrangler_deploy(server: MayflyServer, user: WranglerUser, project: Path, script: str) -> str:
    """Deploy with wrangler; the Worker's answer to GET /."""
    result = run_wrangler(["deploy", "--temporary"], project, server.env(), user)
    assert result.exit_code == 0, str(result)
    response = request_worker(server, temporary_account_name(user), script, "/")
    assert response.status_code == 200, response.text
    return response.text


def mayfly_deploy(server: MayflyServer, home: Path, project: Path) -> str:
    """Deploy with `mayfly deploy --temporary` (an account of its own); the answer to GET /."""
    env = server_environment()
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    env["MAYFLY_API_URL"] = server.api_url
    env.pop("MAYFLY_API_TOKEN", None)
    done = subprocess.run(
        [str(MAYFLY), "deploy", "--temporary", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deployed = json.loads(done.stdout)
    response = request_worker(server, deployed["account_name"], deployed["script"], "/")
    assert response.status_code == 200, response.text
    return response.text


def test_wasm_and_text_modules_with_wrangler(
    mayfly_server: MayflyServer, user: WranglerUser, new_project: Any
) -> None:
    project = new_project("wasm-modules")
    assert wrangler_deploy(mayfly_server, user, project, "wasm-modules") == "5 <p>hi</p>"


def test_wasm_and_text_modules_with_mayfly_deploy(
    mayfly_server: MayflyServer, new_project: Any, tmp_path: Path
) -> None:
    project = new_project("wasm-modules")
    assert mayfly_deploy(mayfly_server, tmp_path, project) == "5 <p>hi</p>"


def test_node_builtins_with_wrangler(
    mayfly_server: MayflyServer, user: WranglerUser, new_project: Any
) -> None:
    project = new_project("node-builtins")
    answer = wrangler_deploy(mayfly_server, user, project, "node-builtins")
    assert json.loads(answer) == NODE_BUILTINS_ANSWER


def test_node_builtins_with_mayfly_deploy(
    mayfly_server: MayflyServer, new_project: Any, tmp_path: Path
) -> None:
    project = new_project("node-builtins")
    answer = mayfly_deploy(mayfly_server, tmp_path, project)
    assert json.loads(answer) == NODE_BUILTINS_ANSWER
