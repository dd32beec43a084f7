"""The official `cloudflare` Python SDK (pinned in pyproject's test group) as a client of `mayfly
serve`: every method of the resources Mayfly serves, and every paginated list it iterates ends."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import cloudflare
import pytest

from tests.compat.conftest import MayflyServer

pytestmark = [pytest.mark.compat]

WORKER = "sdk-worker"
CODE = 'export default { fetch() { return new Response("from the sdk"); } };'


@pytest.fixture(scope="module")
def account(mayfly_server: MayflyServer) -> dict[str, str]:
    return mayfly_server.create_account("sdk-python")


@pytest.fixture(scope="module")
def cf(mayfly_server: MayflyServer, account: dict[str, str]) -> Iterator[Any]:
    with cloudflare.Cloudflare(
        api_token=account["api_token"], base_url=mayfly_server.base_url, max_retries=0
    ) as client:
        yield client


@pytest.fixture(scope="module")
def uploaded(cf: Any, account: dict[str, str]) -> Any:
    return cf.workers.scripts.update(
        WORKER,
        account_id=account["account_id"],
        metadata={"main_module": "index.js", "compatibility_date": "2025-01-01"},
        files=[("index.js", io.BytesIO(CODE.encode()), "application/javascript+module")],
    )


def test_accounts_and_token_verify(cf: Any, account: dict[str, str]) -> None:
    listed = list(cf.accounts.list())
    assert [a.id for a in listed] == [account["account_id"]]
    assert cf.accounts.get(account_id=account["account_id"]).id == account["account_id"]
    assert cf.accounts.tokens.verify(account_id=account["account_id"]).status == "active"


def test_scripts_list_get_content(cf: Any, account: dict[str, str], uploaded: Any) -> None:
    acct = account["account_id"]
    assert uploaded.id == WORKER
    names = [s.id for s in cf.workers.scripts.list(account_id=acct)]
    assert WORKER in names
    assert CODE in cf.workers.scripts.get(WORKER, account_id=acct)
    content = cf.workers.scripts.content.get(WORKER, account_id=acct)
    assert CODE.encode() in content.read()
    assert content.headers["cf-entrypoint"] == "index.js"


def test_settings(cf: Any, account: dict[str, str], uploaded: Any) -> None:
    acct = account["account_id"]
    scripts = cf.workers.scripts
    assert scripts.settings.get(WORKER, account_id=acct).logpush is False
    edited = scripts.settings.edit(WORKER, account_id=acct, tags=["a", "b"])
    assert edited.tags == ["a", "b"]
    both = scripts.script_and_version_settings
    assert both.get(WORKER, account_id=acct).compatibility_date == "2025-01-01"
    changed = both.edit(WORKER, account_id=acct, settings={"logpush": True})
    assert changed.logpush is True
    assert both.get(WORKER, account_id=acct).logpush is True
    with pytest.raises(cloudflare.BadRequestError):
        both.edit(WORKER, account_id=acct, settings={"compatibility_date": "2024-01-01"})


def test_secrets(cf: Any, account: dict[str, str], uploaded: Any) -> None:
    acct = account["account_id"]
    secrets = cf.workers.scripts.secrets
    secrets.update(WORKER, account_id=acct, name="ONE", text="1", type="secret_text")
    assert [s.name for s in secrets.list(WORKER, account_id=acct)] == ["ONE"]
    assert secrets.get("ONE", account_id=acct, script_name=WORKER).name == "ONE"
    secrets.delete("ONE", account_id=acct, script_name=WORKER)
    assert list(secrets.list(WORKER, account_id=acct)) == []


def test_secrets_bulk(mayfly_server: MayflyServer, account: dict[str, str], uploaded: Any) -> None:
    """The SDK has no method for it: the request `wrangler secret bulk` sends."""
    path = f"accounts/{account['account_id']}/workers/scripts/{WORKER}/secrets-bulk"
    body = {"secrets": {"A": {"name": "A", "text": "a", "type": "secret_text"}, "B": {"text": "b"}}}
    patched = mayfly_server.api(
        "PATCH",
        path,
        account["api_token"],
        content=json.dumps(body),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["result"] == {
        "A": {"name": "A", "type": "secret_text"},
        "B": {"name": "B", "type": "secret_text"},
    }
    removed = mayfly_server.api(
        "PATCH", path, account["api_token"], json={"secrets": {"A": None, "B": None}}
    )
    assert removed.json()["result"] == {}


def test_versions_and_deployments_iterate_and_end(
    mayfly_server: MayflyServer, cf: Any, account: dict[str, str], uploaded: Any
) -> None:
    acct = account["account_id"]
    scripts = cf.workers.scripts
    # versions.create's and versions.get's response models do not build under pydantic 2.14
    # (SDK 5.9's ResourcesBindings), whatever the server answers: upload with httpx, and read
    # the version through the SDK's raw response.
    metadata = {"main_module": "index.js", "compatibility_date": "2025-01-01"}
    posted = mayfly_server.api(
        "POST",
        f"accounts/{acct}/workers/scripts/{WORKER}/versions",
        account["api_token"],
        files={
            "metadata": (None, json.dumps(metadata), "application/json"),
            "index.js": ("index.js", CODE.encode(), "application/javascript+module"),
        },
    )
    assert posted.status_code == 200, posted.text
    version_id = posted.json()["result"]["id"]
    raw = scripts.versions.with_raw_response.get(version_id, account_id=acct, script_name=WORKER)
    assert raw.http_response.json()["result"]["id"] == version_id
    versions = list(scripts.versions.list(WORKER, account_id=acct, per_page=1))
    assert version_id in [v.id for v in versions]
    assert len({v.id for v in versions}) == len(versions) >= 2
    deployed = scripts.deployments.create(
        WORKER,
        account_id=acct,
        strategy="percentage",
        versions=[{"version_id": version_id, "percentage": 100}],
    )
    # The iterator reads result.items (wrangler reads result.deployments: both are there); SDK
    # 5.9 types each item as a `{deployments}` wrapper, so the deployment's fields are extras.
    listed = [d.to_dict() for d in scripts.deployments.list(WORKER, account_id=acct, per_page=1)]
    assert deployed.id in [d["id"] for d in listed]
    assert (
        scripts.deployments.get(deployed.id, account_id=acct, script_name=WORKER).id == deployed.id
    )
    assert len({d["id"] for d in listed}) == len(listed) >= 2


def test_schedules_subdomain_tail(cf: Any, account: dict[str, str], uploaded: Any) -> None:
    acct = account["account_id"]
    scripts = cf.workers.scripts
    assert scripts.schedules.get(WORKER, account_id=acct).schedules == []
    assert scripts.subdomain.get(WORKER, account_id=acct).enabled is True
    scripts.subdomain.delete(WORKER, account_id=acct)
    assert scripts.subdomain.get(WORKER, account_id=acct).enabled is False
    assert scripts.subdomain.create(WORKER, account_id=acct, enabled=True).enabled is True
    tail = scripts.tail.create(WORKER, account_id=acct)
    assert tail.url
    scripts.tail.delete(tail.id, account_id=acct, script_name=WORKER)
    assert cf.workers.subdomains.get(account_id=acct).subdomain == "sdk-python"
    assert cf.workers.account_settings.get(account_id=acct).default_usage_model == "standard"
    assert (
        cf.workers.account_settings.update(
            account_id=acct, default_usage_model="standard"
        ).green_compute
        is False
    )


def test_kv(cf: Any, account: dict[str, str]) -> None:
    acct = account["account_id"]
    namespaces = cf.kv.namespaces
    ns = namespaces.create(account_id=acct, title="sdk-kv")
    assert ns.id in [n.id for n in namespaces.list(account_id=acct, per_page=1)]
    assert namespaces.get(ns.id, account_id=acct).title == "sdk-kv"
    namespaces.update(ns.id, account_id=acct, title="sdk-kv-2")
    assert namespaces.get(ns.id, account_id=acct).title == "sdk-kv-2"
    namespaces.values.update(
        "k1", account_id=acct, namespace_id=ns.id, value=b"v1", metadata={"m": 1}
    )
    assert namespaces.values.get("k1", account_id=acct, namespace_id=ns.id).text() == "v1"
    namespaces.bulk_update(
        ns.id,
        account_id=acct,
        body=[{"key": f"b{i}", "value": f"{i}", "metadata": {"i": i}} for i in range(5)],
    )
    assert namespaces.metadata.get("b3", account_id=acct, namespace_id=ns.id) == {"i": 3}
    namespaces.bulk_update(
        ns.id, account_id=acct, body=[{"key": f"page-{i:02}", "value": "x"} for i in range(25)]
    )
    paged = [k.name for k in namespaces.keys.list(ns.id, account_id=acct, prefix="page-", limit=10)]
    assert paged == [f"page-{i:02}" for i in range(25)], "the cursor iterator reads every page once"
    namespaces.bulk_delete(ns.id, account_id=acct, body=paged)
    keys = [k.name for k in namespaces.keys.list(ns.id, account_id=acct, limit=10)]
    assert sorted(keys) == ["b0", "b1", "b2", "b3", "b4", "k1"]
    got = namespaces.bulk_get(ns.id, account_id=acct, keys=["b1", "nope"], with_metadata=True)
    assert (got.values["b1"].value, got.values["b1"].metadata) == ("1", {"i": 1})
    assert (got.values["nope"].value, got.values["nope"].metadata) == (None, None)
    plain = namespaces.bulk_get(ns.id, account_id=acct, keys=["b2"], type="json")
    assert plain.values == {"b2": 2}
    namespaces.bulk_delete(ns.id, account_id=acct, body=["b0", "b1"])
    namespaces.values.delete("k1", account_id=acct, namespace_id=ns.id)
    assert len(list(namespaces.keys.list(ns.id, account_id=acct))) == 3
    namespaces.delete(ns.id, account_id=acct)


def test_delete_script(cf: Any, account: dict[str, str], uploaded: Any) -> None:
    acct = account["account_id"]
    cf.workers.scripts.delete(WORKER, account_id=acct)
    assert WORKER not in [s.id for s in cf.workers.scripts.list(account_id=acct)]
