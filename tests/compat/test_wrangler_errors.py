"""Errors a wrangler user can hit, printed as one clear error (no second error from wrangler's
own error handler, no stack trace), and the wrangler commands behind the newer routes:
`secret bulk`, `versions secret put`, `kv bulk get`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler

pytestmark = pytest.mark.compat

WORKER = "hello-worker"


def assert_one_clear_error(result: WranglerResult, code: int) -> None:
    text = result.output
    assert result.exit_code == 1, str(result)
    assert text.count("[ERROR]") == 1, str(result)
    assert f"[code: {code}]" in text, str(result)
    assert "error handler also failed" not in text, str(result)
    assert "    at " not in text, f"a stack trace:\n{result}"
    assert "Getting User settings" not in text, str(result)


@pytest.fixture(scope="module")
def owner(mayfly_server: MayflyServer) -> dict[str, str]:
    return mayfly_server.create_account("wrangler-errors")


@pytest.fixture(scope="module")
def project(new_project: Any) -> Path:
    made: Path = new_project("hello")
    return made


@pytest.fixture(scope="module")
def user(new_user: Any) -> WranglerUser:
    made: WranglerUser = new_user("errors")
    return made


def run(
    server: MayflyServer,
    user: WranglerUser,
    project: Path,
    token: str,
    account_id: str | None,
    *args: str,
    stdin: str | None = None,
) -> WranglerResult:
    env = {**server.env(), "CLOUDFLARE_API_TOKEN": token}
    if account_id:
        env["CLOUDFLARE_ACCOUNT_ID"] = account_id
    return run_wrangler(list(args), project, env, user, stdin=stdin)


@pytest.mark.parametrize("with_account", [True, False], ids=["account-id", "discovery"])
@pytest.mark.parametrize(
    ("token", "code"),
    [("not-a-token", 6003), ("mfp_" + "x" * 43, 9109), ("mft_" + "x" * 43, 10001)],
    ids=["malformed", "unknown", "expired-temporary"],
)
def test_a_bad_token_is_one_clear_error(
    mayfly_server: MayflyServer,
    user: WranglerUser,
    project: Path,
    owner: dict[str, str],
    token: str,
    code: int,
    with_account: bool,
) -> None:
    account_id = owner["account_id"] if with_account else None
    result = run(mayfly_server, user, project, token, account_id, "kv", "namespace", "list")
    assert_one_clear_error(result, code)


def test_a_token_for_another_account_is_one_clear_error(
    mayfly_server: MayflyServer, user: WranglerUser, project: Path, owner: dict[str, str]
) -> None:
    other = mayfly_server.create_account("wrangler-errors-other")
    result = run(mayfly_server, user, project, owner["api_token"], other["account_id"], "deploy")
    assert_one_clear_error(result, 9109)


def test_a_refused_binding_is_one_clear_error(
    mayfly_server: MayflyServer, user: WranglerUser, new_project: Any, owner: dict[str, str]
) -> None:
    project: Path = new_project("hello")
    config = project / "wrangler.toml"
    config.write_text(
        config.read_text()
        + '\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "db"\n'
        + 'database_id = "00000000-0000-0000-0000-000000000000"\n'
    )
    result = run(mayfly_server, user, project, owner["api_token"], owner["account_id"], "deploy")
    assert_one_clear_error(result, 10021)


def test_secret_bulk_and_versions_secret_put(
    mayfly_server: MayflyServer, user: WranglerUser, project: Path, owner: dict[str, str]
) -> None:
    token, account_id = owner["api_token"], owner["account_id"]
    deployed = run(mayfly_server, user, project, token, account_id, "deploy")
    assert deployed.exit_code == 0, str(deployed)
    secrets_file = project / "secrets.json"
    secrets_file.write_text(json.dumps({"ALPHA": "a", "BETA": "b"}))
    bulk = run(mayfly_server, user, project, token, account_id, "secret", "bulk", str(secrets_file))
    assert bulk.exit_code == 0, str(bulk)
    listed = run(mayfly_server, user, project, token, account_id, "secret", "list")
    assert sorted(s["name"] for s in json.loads(listed.stdout)) == ["ALPHA", "BETA"]

    put = run(
        mayfly_server,
        user,
        project,
        token,
        account_id,
        "versions",
        "secret",
        "put",
        "GAMMA",
        stdin="g\n",
    )
    assert put.exit_code == 0, str(put)
    newest = mayfly_server.api(
        "GET", f"accounts/{account_id}/workers/scripts/{WORKER}/versions", token
    ).json()["result"]["items"][0]
    names = {b["name"] for b in newest["resources"]["bindings"]}
    assert {"ALPHA", "BETA", "GAMMA"} <= names
    deployed_names = run(mayfly_server, user, project, token, account_id, "secret", "list")
    assert "GAMMA" not in deployed_names.stdout, "versions secret put does not deploy"


def test_kv_bulk_get(
    mayfly_server: MayflyServer, user: WranglerUser, project: Path, owner: dict[str, str]
) -> None:
    token, account_id = owner["api_token"], owner["account_id"]
    created = mayfly_server.api(
        "POST", f"accounts/{account_id}/storage/kv/namespaces", token, json={"title": "bulk-get"}
    )
    namespace_id = created.json()["result"]["id"]
    mayfly_server.api(
        "PUT",
        f"accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk",
        token,
        json=[{"key": "one", "value": "1"}, {"key": "two", "value": "2"}],
    )
    keys_file = project / "keys.json"
    keys_file.write_text(json.dumps(["one", "two", "three"]))
    got = run(
        mayfly_server,
        user,
        project,
        token,
        account_id,
        "kv",
        "bulk",
        "get",
        str(keys_file),
        "--namespace-id",
        namespace_id,
        "--remote",
    )
    assert got.exit_code == 0, str(got)
    printed = json.loads(got.stdout[got.stdout.index("{") :])
    assert printed == {"one": "1", "two": "2", "three": None}
