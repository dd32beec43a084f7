"""`mayfly deploy` and `mayfly whoami` through click's runner, the SDK talking to the app in-process."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from mayfly.app import Platform
from mayfly.cli.main import cli
from mayfly.cli.options import ClientEnv
from mayfly.services.identity.tokens import revoke_account_tokens
from tests.clock import ManualClock
from tests.unit.cli_support import Mayfly, app_transport


def write_project(root: Path, name: str = "hello", greeting: str = "Hello") -> Path:
    (root / "src" / "lib").mkdir(parents=True, exist_ok=True)
    (root / "wrangler.toml").write_text(
        f'name = "{name}"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n'
        f'[vars]\nGREETING = "{greeting}"\n'
    )
    (root / "src" / "index.js").write_text(
        'import { greet } from "./lib/greet.js";\n'
        "export default { fetch(req, env) { return new Response(greet(env.GREETING)); } };\n"
    )
    (root / "src" / "lib" / "greet.js").write_text("export const greet = (g) => `${g}!`;\n")
    return root


@pytest.fixture
def transport(platform: Platform) -> Iterator[httpx.MockTransport]:
    with app_transport(platform.public_app()) as t:
        yield t


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_project(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def mayfly(transport: httpx.MockTransport, home: Path) -> Mayfly:
    return Mayfly(transport, home)


def test_without_credentials_exit_1_with_the_hint(mayfly: Mayfly, project: Path) -> None:
    result = mayfly("deploy")
    assert result.exit_code == 1
    assert "rerun this command with `--temporary`" in result.stderr
    assert result.stdout == ""
    code, body = mayfly.json("deploy")
    assert code == 1
    assert body["error"]["code"] == "no_credentials"
    assert "--temporary" in body["error"]["message"]


def test_temporary_creates_then_reuses(mayfly: Mayfly, project: Path) -> None:
    code, first = mayfly.json("deploy", "--temporary")
    assert code == 0, first
    assert first["created_or_reused"] == "created"
    assert first["api_token"].startswith("mft_")
    assert first["url"] == f"http://hello.{first['account_name']}.localhost:8788"
    assert first["claim_url"].startswith("http://localhost:8787/claim/")
    assert first["expires_at"].endswith("Z")
    assert first["version_id"]
    assert stat.S_IMODE(mayfly.cache_file.stat().st_mode) == 0o600

    code, second = mayfly.json("deploy", "--temporary")
    assert code == 0
    assert second["created_or_reused"] == "reused"
    assert "api_token" not in second
    assert second["account_id"] == first["account_id"]
    assert second["version_id"] != first["version_id"]

    # The cached account is the third credential source: a plain deploy uses it too.
    code, third = mayfly.json("deploy")
    assert code == 0 and third["account_id"] == first["account_id"]


def test_progress_and_notices_go_to_stderr(mayfly: Mayfly, project: Path) -> None:
    result = mayfly("deploy", "--temporary", "--json")
    assert result.exit_code == 0
    json.loads(result.stdout)  # stdout is exactly one JSON object
    assert "Solving proof-of-work challenge… " in result.stderr
    assert "done (" in result.stderr
    assert "(created) — claim within 60 minutes" in result.stderr
    assert "Uploading hello (2 modules" in result.stderr


def test_pretty_output(mayfly: Mayfly, project: Path) -> None:
    result = mayfly("deploy", "--temporary")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Deployed hello (version ")
    labels = [line.split()[0] for line in lines[1:]]
    assert labels == ["URL", "Account", "Claim", "API"]
    again = mayfly("deploy", "--temporary")
    assert "API token" not in again.stdout
    assert "temporary, reused" in again.stdout


def test_temporary_with_a_token_is_a_usage_error(mayfly: Mayfly, project: Path) -> None:
    result = mayfly("deploy", "--temporary", MAYFLY_API_TOKEN="mfp_whatever")
    assert result.exit_code == 2
    assert "cannot be used while other credentials are set (MAYFLY_API_TOKEN)" in result.stderr
    code, body = mayfly.json("deploy", "--temporary", "--api-token", "mfp_x")
    assert code == 2
    assert body["error"]["code"] == "temporary_conflict"


def test_project_errors_exit_1(mayfly: Mayfly, project: Path) -> None:
    (project / "src" / "index.js").write_text("import '../../outside.js';")
    code, body = mayfly.json("deploy", "--temporary")
    assert code == 1
    assert body["error"]["code"] == "project_invalid"
    assert "outside the project" in body["error"]["message"]
    assert not mayfly.cache_file.exists()  # nothing was provisioned for a broken project


def test_api_errors_exit_1_with_the_api_code(mayfly: Mayfly, project: Path) -> None:
    (project / "wrangler.toml").write_text(
        'name = "hello"\nmain = "src/index.js"\ncompatibility_flags = ["not_a_flag"]\n'
    )
    code, body = mayfly.json("deploy", "--temporary")
    assert code == 1
    assert body["error"]["code"] == 10021
    assert "not_a_flag" in body["error"]["message"]


def test_unreachable_api(home: Path, project: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    code, body = Mayfly(httpx.MockTransport(refuse), home).json("deploy", "--temporary")
    assert code == 1
    assert body["error"]["code"] == "api_unreachable"


def test_bad_api_url_is_a_usage_error(mayfly: Mayfly, project: Path) -> None:
    result = mayfly("deploy", "--api-url", "localhost:8787")
    assert result.exit_code == 2
    assert "must be an http:// or https:// URL" in result.stderr


def test_entry_and_name(mayfly: Mayfly, project: Path) -> None:
    (project / "src" / "other.js").write_text("export default {};")
    code, body = mayfly.json("deploy", "src/other.js", "--name", "other", "--temporary")
    assert code == 0, body
    assert body["script"] == "other"


def test_server_side_expiry_drops_the_cache_and_provisions(
    mayfly: Mayfly, project: Path, clock: ManualClock, platform: Platform
) -> None:
    _, first = mayfly.json("deploy", "--temporary")
    clock.advance(platform.settings.temporary_ttl + 1)  # the server's clock only

    result = mayfly("deploy")
    assert result.exit_code == 1
    assert "expired or was deleted" in result.stderr
    assert "--temporary" in result.stderr
    assert (
        not mayfly.cache_file.exists() or first["account_id"] not in mayfly.cache_file.read_text()
    )

    _, first = mayfly.json("deploy", "--temporary")  # a fresh account…
    clock.advance(platform.settings.temporary_ttl + 1)
    result = mayfly("deploy", "--temporary", "--json")  # …expires while cached
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["created_or_reused"] == "created"
    assert body["account_id"] != first["account_id"]
    assert "expired or was deleted on the server" in result.stderr
    assert body["notices"]


def test_claimed_account_is_dropped(
    mayfly: Mayfly, project: Path, clock: ManualClock, platform: Platform
) -> None:
    _, first = mayfly.json("deploy", "--temporary")
    with platform.db.begin() as conn:
        revoke_account_tokens(conn, first["account_id"], "claimed", clock.now())
    code, body = mayfly.json("deploy", "--temporary")
    assert code == 1
    assert body["error"]["code"] == 10002
    assert "claimed by a human" in body["error"]["message"]
    code, body = mayfly.json("whoami")
    assert code == 1 and body["error"]["code"] == "no_credentials"


def test_token_credentials(mayfly: Mayfly, project: Path, platform: Platform) -> None:
    account, token = platform.services.accounts.create_permanent("perm-acct")
    code, body = mayfly.json("deploy", MAYFLY_API_TOKEN=token)
    assert code == 0, body
    assert body["account_id"] == account.id
    assert body["claim_url"] is None and body["created_or_reused"] is None
    assert "api_token" not in body
    code, body = mayfly.json("deploy", MAYFLY_API_TOKEN=token, MAYFLY_ACCOUNT_ID="f" * 32)
    assert code == 1 and body["error"]["code"] == 9109


# -- whoami ---------------------------------------------------------------------------------


def test_whoami_without_credentials(mayfly: Mayfly, project: Path) -> None:
    result = mayfly("whoami")
    assert result.exit_code == 1
    assert "mayfly deploy --temporary" in result.stderr


def test_whoami_temporary(mayfly: Mayfly, project: Path) -> None:
    _, deployed = mayfly.json("deploy", "--temporary")
    code, body = mayfly.json("whoami")
    assert code == 0
    assert body["source"] == "temporary"
    assert body["account_id"] == deployed["account_id"]
    assert body["account_name"] == deployed["account_name"]
    assert body["kind"] == "temporary"
    assert body["claim_url"] == deployed["claim_url"]
    assert body["claim_status"] == "unclaimed"
    assert 3500 < body["seconds_left"] <= 3600
    assert "api_token" not in body

    text = mayfly("whoami")
    assert text.exit_code == 0
    assert deployed["api_token"] not in text.stdout
    assert "Claim URL" in text.stdout and "in 60 minutes" in text.stdout

    code, body = mayfly.json("whoami", "--show-token")
    assert body["api_token"] == deployed["api_token"]
    assert deployed["api_token"] in mayfly("whoami", "--show-token").stdout


def test_whoami_with_a_token(mayfly: Mayfly, project: Path, platform: Platform) -> None:
    account, token = platform.services.accounts.create_permanent("perm-acct")
    code, body = mayfly.json("whoami", "--api-token", token)
    assert code == 0
    assert body["source"] == "--api-token"
    assert (body["account_id"], body["account_name"]) == (account.id, "perm-acct")
    assert body["claim_url"] is None
    code, body = mayfly.json("whoami", MAYFLY_API_TOKEN="mfp_nonsense")
    assert code == 1 and body["error"]["code"] == 6003
    code, body = mayfly.json("whoami", MAYFLY_API_TOKEN="mfp_" + "x" * 43)
    assert code == 1 and body["error"]["code"] == 9109


def test_whoami_after_server_side_expiry(
    mayfly: Mayfly, project: Path, clock: ManualClock, platform: Platform
) -> None:
    mayfly.json("deploy", "--temporary")
    clock.advance(platform.settings.temporary_ttl + 1)
    code, body = mayfly.json("whoami")
    assert code == 1
    assert body["error"]["code"] == 10001
    assert "removed from the cache" in body["error"]["message"]
    assert mayfly.json("whoami")[1]["error"]["code"] == "no_credentials"


def test_whoami_when_the_cache_expired_by_the_clock(
    mayfly: Mayfly, project: Path, transport: httpx.MockTransport
) -> None:
    _, deployed = mayfly.json("deploy", "--temporary")
    later = datetime.now(UTC) + timedelta(hours=2)
    result = CliRunner().invoke(
        cli,
        ["whoami", "--json"],
        obj=ClientEnv(transport=transport, now=lambda: later),
        env=mayfly.env,
    )
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == 10001
    assert f"{deployed['account_name']} expired at" in error["message"]
    assert (
        not mayfly.cache_file.exists()
        or deployed["account_id"] not in mayfly.cache_file.read_text()
    )


def test_help_lists_the_commands(mayfly: Mayfly) -> None:
    result = mayfly("--help")
    assert result.exit_code == 0
    for name in ("deploy", "whoami", "serve"):
        assert name in result.stdout


def test_what_the_data_plane_gets(mayfly: Mayfly, project: Path, platform: Platform) -> None:
    """Module names, main module and vars arrive as the runtime will load them."""
    from starlette.testclient import TestClient

    from mayfly.api.internal import SECRET_HEADER

    _, deployed = mayfly.json("deploy", "--temporary")
    with TestClient(platform.internal_app()) as internal:
        code = internal.get(
            f"/internal/v1/versions/{deployed['version_id']}",
            headers={SECRET_HEADER: platform.internal_secret},
        ).json()
    assert code["main_module"] == "src/index.js"
    assert sorted((m["name"], m["kind"]) for m in code["modules"]) == [
        ("src/index.js", "esm"),
        ("src/lib/greet.js", "esm"),
    ]
    assert code["env"] == {"GREETING": "Hello"}
    assert code["compatibility_date"] == "2025-01-01"


def test_whoami_after_a_human_claimed_the_account(
    mayfly: Mayfly, project: Path, platform: Platform
) -> None:
    import asyncio

    _, deployed = mayfly.json("deploy", "--temporary")
    user = platform.services.users.sign_up("ada@example.com", "a long and uncommon passphrase 42")
    claim_token = deployed["claim_url"].rsplit("/", 1)[1]
    asyncio.run(platform.services.claims.keep(claim_token, user))
    code, body = mayfly.json("whoami")
    assert code == 1
    assert body["error"]["code"] == 10002
    assert "claimed by a human at" in body["error"]["message"]
    assert "mayfly login --api-url" in body["error"]["message"]
    assert mayfly.json("whoami")[1]["error"]["code"] == "no_credentials"  # dropped from the cache


def test_a_deploy_after_a_human_claimed_says_who_can_give_access(
    mayfly: Mayfly, project: Path, platform: Platform
) -> None:
    import asyncio

    from sqlalchemy import func, select

    from mayfly.storage.tables import accounts

    _, deployed = mayfly.json("deploy", "--temporary")
    user = platform.services.users.sign_up("ada@example.com", "a long and uncommon passphrase 42")
    claim_token = deployed["claim_url"].rsplit("/", 1)[1]
    asyncio.run(platform.services.claims.keep(claim_token, user))

    def account_count() -> int:
        with platform.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(accounts)).scalar_one())

    before = account_count()
    code, body = mayfly.json("deploy", "--temporary")
    assert code == 1
    error = body["error"]
    assert error["code"] == 10002
    assert "was claimed by a human at" in error["message"]
    assert "No new temporary account was created" in error["message"]
    assert "mayfly login --api-url" in error["message"]
    claimed = error["claimed"]
    assert claimed["account_id"] == deployed["account_id"]
    assert claimed["account_name"] == deployed["account_name"]
    assert claimed["claimed_at"].endswith("UTC")
    assert claimed["new_temporary_account"] is False
    assert claimed["get_access"]["login"].startswith("mayfly login --api-url ")
    assert claimed["get_access"]["dashboard_token"] == (
        f"http://localhost:8787/dashboard/accounts/{deployed['account_id']}"
    )
    assert account_count() == before  # nothing was provisioned over it

    # The same in text (a fresh cached account, claimed the same way).
    _, again = mayfly.json("deploy", "--temporary")
    asyncio.run(platform.services.claims.keep(again["claim_url"].rsplit("/", 1)[1], user))
    result = mayfly("deploy")
    assert result.exit_code == 1
    assert "was claimed by a human at" in result.stderr
    assert f"/dashboard/accounts/{again['account_id']}" in result.stderr
    assert "MAYFLY_API_TOKEN" in result.stderr
