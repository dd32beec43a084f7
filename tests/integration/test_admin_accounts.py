"""`mayfly admin account list|show|suspend|resume|delete`: found like `mayfly serve` finds the
database; a suspended account's Workers answer 503 and its tokens cannot write; delete removes
everything like the reaper. Each change is audited."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.cli.main import cli
from mayfly.storage import tables
from tests.conftest import auth, provision
from tests.integration.test_claim_support import deploy, kv_namespace


def admin(platform: Platform, *args: str) -> Any:
    env = {
        "MAYFLY_DATA_DIR": str(platform.settings.data_dir),
        "MAYFLY_DATABASE_URL": platform.settings.database_url,
    }
    done = CliRunner().invoke(cli, ["admin", "account", *args, "--json"], env=env)
    return done.exit_code, json.loads(done.stdout)


def events(platform: Platform, account_id: str) -> list[str]:
    with platform.db.read() as conn:
        rows = conn.execute(
            select(tables.audit_events.c.event, tables.audit_events.c.actor).where(
                tables.audit_events.c.account_id == account_id
            )
        ).all()
    return [f"{r.event} by {r.actor}" for r in rows]


def test_list_show_suspend_resume_delete(platform: Platform, client: TestClient) -> None:
    account = provision(client)["account"]
    token = auth(account["apiToken"])
    deploy(client, account["id"], account["apiToken"])
    kv_namespace(client, account["id"], account["apiToken"], "cache")
    host = f"hello.{account['name']}.localhost"
    assert (platform.settings.data_dir / "blobs" / account["id"]).exists()

    code, listed = admin(platform, "list")
    assert code == 0
    (entry,) = listed["accounts"]
    assert entry["name"] == account["name"] and entry["kind"] == "temporary"
    assert entry["workers"] == 1 and entry["suspended_at"] is None

    code, shown = admin(platform, "show", account["name"])
    assert code == 0
    assert shown["account"]["id"] == account["id"]
    assert shown["account"]["scripts"] == [{"name": "hello", "url": f"http://{host}:8788"}]
    assert shown["account"]["kv_namespaces"] == 1 and shown["account"]["active_tokens"] == 1

    code, suspended = admin(platform, "suspend", account["id"], "--reason", "phishing")
    assert code == 0 and suspended["hosts"] == [host]
    assert suspended["account"]["suspended_at"] is not None
    route = platform.services.routing.route(host)
    assert route.status == "suspended" and route.quarantined_until is not None
    assert "suspended" in (route.message or "")
    base = f"accounts/{account['id']}/workers/scripts/hello"
    refused = client.put(
        base + "/secrets", headers=token, json={"name": "S", "text": "x", "type": "secret_text"}
    )
    assert refused.status_code == 503
    assert refused.json()["errors"][0]["code"] == 10060
    assert client.get(f"accounts/{account['id']}/workers/scripts", headers=token).status_code == 200
    assert admin(platform, "list", "--suspended")[1]["accounts"][0]["id"] == account["id"]
    code, again = admin(platform, "suspend", account["name"])
    assert code == 1 and again["error"]["code"] == 10409

    code, _ = admin(platform, "resume", account["name"])
    assert code == 0
    assert platform.services.routing.route(host).status == "ok"
    stored = client.put(
        base + "/secrets", headers=token, json={"name": "S", "text": "x", "type": "secret_text"}
    )
    assert stored.status_code == 200, stored.text

    code, deleted = admin(platform, "delete", account["name"])
    assert code == 0 and deleted["deleted"] == {"name": account["name"], "hosts": [host]}
    assert platform.services.routing.route(host).status == "expired"
    assert not (platform.settings.data_dir / "blobs" / account["id"]).exists()
    with platform.db.read() as conn:
        for table in (tables.accounts, tables.scripts, tables.kv_namespaces, tables.api_tokens):
            column = table.c.id if table is tables.accounts else table.c.account_id
            assert conn.execute(select(table).where(column == account["id"])).first() is None
    assert client.get("accounts", headers=token).status_code in (400, 401, 403)
    assert {
        "account.suspended by operator",
        "account.resumed by operator",
        "account.deleted by operator",
    } <= set(events(platform, account["id"]))
    assert admin(platform, "list")[1] == {"accounts": []}


def test_an_unknown_account_is_an_error(platform: Platform) -> None:
    code, answer = admin(platform, "show", "nobody")
    assert code == 1
    assert answer["error"]["code"] == 10404 and "nobody" in answer["error"]["message"]
