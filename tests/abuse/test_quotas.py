"""Per-account quotas: every write path answers 10440 (413) at the limit with a message naming the
quota, the usage, the limit and how to free space; freeing space lets the write through; old
versions are pruned; temporary accounts get lower limits than permanent ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.identity.accounts import get_account
from mayfly.services.resources import quotas
from mayfly.services.resources.quotas import quota_for, stored_bytes
from mayfly.services.temporary.transfers import plan_transfer
from mayfly.settings import Settings
from mayfly.storage import tables
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision, upload_body
from tests.integration.test_assets import manifest


@pytest.fixture
def limits() -> dict[str, Any]:
    return {}


@pytest.fixture
def quota_platform(
    database_url: str, tmp_path: Path, clock: ManualClock, limits: dict[str, Any]
) -> Iterator[Platform]:
    settings = make_settings(tmp_path, database_url=database_url, **limits)
    platform = Platform.create(settings, clock=clock)
    yield platform
    platform.db.dispose()


@pytest.fixture
def api(quota_platform: Platform) -> Iterator[TestClient]:
    with TestClient(quota_platform.public_app(), base_url="http://testserver/client/v4/") as c:
        yield c


@pytest.fixture
def account(api: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(api)["account"]
    return result


def refused(response: httpx.Response, *words: str) -> str:
    """Assert a 10440 in Cloudflare's envelope; returns its message."""
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["success"] is False
    error = body["errors"][0]
    assert error["code"] == 10440
    message: str = error["message"]
    for word in words:
        assert word in message, message
    return message


def ns_url(account: dict[str, Any], ns: str = "") -> str:
    base = f"accounts/{account['id']}/storage/kv/namespaces"
    return f"{base}/{ns}" if ns else base


def new_namespace(api: TestClient, account: dict[str, Any], title: str = "data") -> str:
    response = api.post(ns_url(account), headers=auth(account["apiToken"]), json={"title": title})
    assert response.status_code == 200, response.text
    namespace_id: str = response.json()["result"]["id"]
    return namespace_id


def put_value(
    api: TestClient, account: dict[str, Any], ns: str, key: str, value: bytes
) -> httpx.Response:
    return api.put(
        f"{ns_url(account, ns)}/values/{key}", headers=auth(account["apiToken"]), content=value
    )


def delete_value(api: TestClient, account: dict[str, Any], ns: str, key: str) -> None:
    response = api.delete(f"{ns_url(account, ns)}/values/{key}", headers=auth(account["apiToken"]))
    assert response.status_code == 200, response.text


def worker(size: int, seed: str = "a") -> dict[str, Any]:
    """An upload whose module is about `size` bytes, different for each seed."""
    code = f'export default {{ fetch() {{ return new Response("{seed}"); }} }};\n//'
    data = (code + seed * max(0, size - len(code))).encode()
    return upload_body(modules={"index.js": (data, "application/javascript+module")})


def deploy(
    api: TestClient, account: dict[str, Any], script: str, size: int = 100, seed: str = "a"
) -> httpx.Response:
    return api.put(
        f"accounts/{account['id']}/workers/scripts/{script}",
        headers=auth(account["apiToken"]),
        **worker(size, seed),
    )


# -- KV --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [{"quota_bytes_temporary": 10_000}])
def test_kv_bytes_quota_on_put_bulk_and_binding(
    api: TestClient, account: dict[str, Any], quota_platform: Platform
) -> None:
    ns = new_namespace(api, account)
    assert put_value(api, account, ns, "first", b"x" * 6000).status_code == 200
    message = refused(
        put_value(api, account, ns, "second", b"y" * 6000),
        "Storage quota",
        "KV",
        "10000 bytes",
        "wrangler kv key delete",
        "Claiming",
    )
    assert "5.9 KiB" in message  # the usage
    # Replacing a value frees what it replaces.
    assert put_value(api, account, ns, "first", b"z" * 6500).status_code == 200
    bulk = api.put(
        f"{ns_url(account, ns)}/bulk",
        headers=auth(account["apiToken"]),
        content=json.dumps([{"key": "b", "value": "v" * 6000}]),
    )
    refused(bulk, "Storage quota")
    # The data plane's KV binding: the Worker's put() throws "KV PUT failed: 413 <message>".
    with TestClient(
        quota_platform.internal_app(),
        base_url="http://internal/internal/v1/",
        headers={"x-mayfly-internal-secret": quota_platform.internal_secret},
    ) as internal:
        binding = internal.put(f"kv/{ns}", params={"key": "binding"}, content=b"w" * 6000)
    assert binding.status_code == 413, binding.text
    assert binding.json()["error"].startswith("Storage quota reached")
    delete_value(api, account, ns, "first")
    assert put_value(api, account, ns, "second", b"y" * 6000).status_code == 200


@pytest.mark.parametrize("limits", [{"quota_kv_keys_temporary": 3}])
def test_kv_keys_quota(api: TestClient, account: dict[str, Any]) -> None:
    first, second = new_namespace(api, account, "one"), new_namespace(api, account, "two")
    for ns, key in ((first, "a"), (first, "b"), (second, "c")):
        assert put_value(api, account, ns, key, b"1").status_code == 200
    refused(put_value(api, account, second, "d", b"1"), "3 KV keys", "limit of 3", "delete")
    assert put_value(api, account, first, "a", b"overwrite").status_code == 200
    delete_value(api, account, first, "b")
    assert put_value(api, account, second, "d", b"1").status_code == 200


def bulk_put(api: TestClient, account: dict[str, Any], ns: str, items: list[Any]) -> httpx.Response:
    return api.put(
        f"{ns_url(account, ns)}/bulk", headers=auth(account["apiToken"]), content=json.dumps(items)
    )


@pytest.mark.parametrize("limits", [{"quota_kv_keys_temporary": 5, "quota_bytes_temporary": 4000}])
def test_a_bulk_write_is_counted_item_by_item_and_refused_whole(
    api: TestClient, account: dict[str, Any]
) -> None:
    ns = new_namespace(api, account)
    assert put_value(api, account, ns, "existing", b"1").status_code == 200
    five = [{"key": f"k{i}", "value": "v"} for i in range(5)]
    refused(bulk_put(api, account, ns, five), "KV keys", "limit of 5")
    keys = api.get(f"{ns_url(account, ns)}/keys", headers=auth(account["apiToken"]))
    assert [k["name"] for k in keys.json()["result"]] == ["existing"]  # nothing of the bulk
    # The same key twice, and the key that exists: 4 keys in all, within the limit.
    again = [*five[:3], {"key": "k0", "value": "w"}, {"key": "existing", "value": "2"}]
    assert bulk_put(api, account, ns, again).status_code == 200
    # Bytes add up over the items of one bulk.
    halves = [{"key": "k0", "value": "a" * 1900}, {"key": "k1", "value": "b" * 1900}]
    assert bulk_put(api, account, ns, halves).status_code == 200
    refused(bulk_put(api, account, ns, [{"key": "k2", "value": "c" * 300}]), "Storage quota")


def kv_usage_matches_the_entries(platform: Platform) -> dict[str, tuple[int, int]]:
    """The trigger-kept kv_usage rows equal a fresh aggregate over kv_entries; returns them."""
    entries = tables.kv_entries
    size = quotas.kv_size_column()
    with platform.db.read() as conn:
        counted = {
            r.account_id: (int(r.entries), int(r.stored_bytes))
            for r in conn.execute(select(tables.kv_usage)).all()
        }
        actual = {
            r[0]: (int(r[1]), int(r[2]))
            for r in conn.execute(
                select(entries.c.account_id, func.count(), func.sum(size)).group_by(
                    entries.c.account_id
                )
            ).all()
        }
    assert counted == actual
    return counted


def test_kv_usage_follows_every_path_that_writes_entries(
    api: TestClient, quota_platform: Platform, clock: ManualClock
) -> None:
    one, two = provision(api)["account"], provision(api)["account"]
    ns = new_namespace(api, one)
    assert put_value(api, one, ns, "a", b"1234").status_code == 200
    put = api.put(
        f"{ns_url(one, ns)}/values/b",
        headers=auth(one["apiToken"]),
        files={"value": (None, "xyz"), "metadata": (None, '{"m": [1, 2]}')},
    )
    assert put.status_code == 200, put.text
    assert put_value(api, one, ns, "a", b"12").status_code == 200  # replaced: smaller
    expected = quotas.kv_entry_bytes("a", b"12", None) + quotas.kv_entry_bytes(
        "b", b"xyz", {"m": [1, 2]}
    )
    assert kv_usage_matches_the_entries(quota_platform)[one["id"]] == (2, expected)
    assert bulk_put(api, one, ns, [{"key": "c", "value": "v"}, {"key": "d", "value": "w"}])
    delete_value(api, one, ns, "c")
    short = api.put(
        f"{ns_url(one, ns)}/values/brief?expiration_ttl=60",
        headers=auth(one["apiToken"]),
        content=b"soon gone",
    )
    assert short.status_code == 200, short.text
    assert kv_usage_matches_the_entries(quota_platform)[one["id"]][0] == 4
    clock.advance(61)
    quota_platform.services.reaper.purge_old_records()  # expired entries go, and their count
    assert kv_usage_matches_the_entries(quota_platform)[one["id"]][0] == 3
    # A claim moves entries by updating their account (services/temporary/transfers.py does this).
    with quota_platform.db.begin() as conn:
        conn.execute(
            update(tables.kv_entries)
            .where(tables.kv_entries.c.account_id == one["id"])
            .values(account_id=two["id"])
        )
    moved = kv_usage_matches_the_entries(quota_platform)
    assert one["id"] not in moved and moved[two["id"]][0] == 3
    ns_two = new_namespace(api, two, "own")
    assert put_value(api, two, ns_two, "x", b"1").status_code == 200
    with quota_platform.db.begin() as conn:  # the namespace moved with the claim, too
        conn.execute(
            update(tables.kv_namespaces)
            .where(tables.kv_namespaces.c.id == ns)
            .values(account_id=two["id"])
        )
    assert api.delete(ns_url(two, ns), headers=auth(two["apiToken"])).status_code == 200
    assert kv_usage_matches_the_entries(quota_platform)[two["id"]] == (
        1,
        quotas.kv_entry_bytes("x", b"1", None),
    )
    clock.advance(quota_platform.settings.temporary_ttl)
    asyncio.run(quota_platform.services.reaper.run_once())  # expired accounts are reaped
    assert kv_usage_matches_the_entries(quota_platform) == {}


@pytest.mark.parametrize("limits", [{"quota_kv_namespaces_temporary": 2}])
def test_kv_namespaces_quota(api: TestClient, account: dict[str, Any]) -> None:
    new_namespace(api, account, "one")
    two = new_namespace(api, account, "two")
    response = api.post(ns_url(account), headers=auth(account["apiToken"]), json={"title": "3"})
    refused(response, "2 KV namespaces", "limit of 2", "wrangler kv namespace delete")
    assert api.delete(ns_url(account, two), headers=auth(account["apiToken"])).status_code == 200
    new_namespace(api, account, "three")


# -- Workers and versions --------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [{"quota_workers_temporary": 2}])
def test_workers_quota(api: TestClient, account: dict[str, Any]) -> None:
    assert deploy(api, account, "one").status_code == 200
    assert deploy(api, account, "two").status_code == 200
    refused(deploy(api, account, "three"), "2 Workers", "limit of 2", "wrangler delete")
    assert deploy(api, account, "two", seed="b").status_code == 200  # a new version is no Worker
    url = f"accounts/{account['id']}/workers/scripts/one"
    assert api.delete(url, headers=auth(account["apiToken"])).status_code == 200
    assert deploy(api, account, "three").status_code == 200


def version_ids(api: TestClient, account: dict[str, Any], script: str) -> list[str]:
    response = api.get(
        f"accounts/{account['id']}/workers/scripts/{script}/versions",
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    items = result["items"] if isinstance(result, dict) else result
    return [v["id"] for v in items]


def deployed_version(api: TestClient, account: dict[str, Any], script: str) -> str:
    response = api.get(
        f"accounts/{account['id']}/workers/scripts/{script}/deployments",
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 200, response.text
    version: str = response.json()["result"]["deployments"][0]["versions"][0]["version_id"]
    return version


@pytest.mark.parametrize("limits", [{"quota_versions_temporary": 3}])
def test_old_undeployed_versions_are_pruned(
    api: TestClient, account: dict[str, Any], quota_platform: Platform
) -> None:
    assert deploy(api, account, "app", seed="0").status_code == 200
    deployed = deployed_version(api, account, "app")
    for seed in "123456":  # `wrangler versions upload`: versions that are not deployed
        response = api.post(
            f"accounts/{account['id']}/workers/scripts/app/versions",
            headers=auth(account["apiToken"]),
            **worker(100, seed),
        )
        assert response.status_code == 200, response.text
    kept = version_ids(api, account, "app")
    assert len(kept) == 3
    assert deployed in kept  # the deployed version is never pruned, however old
    for seed in "789":
        assert deploy(api, account, "app", seed=seed).status_code == 200
    assert len(version_ids(api, account, "app")) == 3
    with quota_platform.db.read() as conn:
        modules = conn.execute(select(func.count()).select_from(tables.modules)).scalar_one()
        blobs = conn.execute(select(func.count()).select_from(tables.blobs)).scalar_one()
        deployments = conn.execute(
            select(func.count()).select_from(tables.deployments)
        ).scalar_one()
    assert modules == 3 and blobs == 3  # the pruned versions' code is collected
    assert deployments <= 3  # with the history entries that named pruned versions


@pytest.mark.parametrize("limits", [{"quota_versions_temporary": 2}])
def test_secret_changes_prune_old_versions_too(api: TestClient, account: dict[str, Any]) -> None:
    assert deploy(api, account, "app").status_code == 200
    for n in range(3):
        response = api.put(
            f"accounts/{account['id']}/workers/scripts/app/secrets",
            headers=auth(account["apiToken"]),
            json={"name": f"S{n}", "text": "x", "type": "secret_text"},
        )
        assert response.status_code == 200, response.text
    kept = version_ids(api, account, "app")
    assert len(kept) == 2 and deployed_version(api, account, "app") in kept


@pytest.mark.parametrize("limits", [{"quota_bytes_temporary": 50_000}])
def test_script_bytes_quota_prunes_then_refuses(
    api: TestClient, account: dict[str, Any], quota_platform: Platform
) -> None:
    assert deploy(api, account, "one", size=30_000, seed="a").status_code == 200
    # A new version of the same Worker: its undeployed predecessor is pruned to make room.
    assert deploy(api, account, "one", size=30_000, seed="b").status_code == 200
    assert len(version_ids(api, account, "one")) == 1
    message = refused(
        deploy(api, account, "two", size=30_000),
        "Storage quota",
        "Workers' code",
        "wrangler delete",
    )
    assert "29.3 KiB" in message
    # `wrangler versions upload` of the same: refused too, and the deployed version stays.
    versions_upload = api.post(
        f"accounts/{account['id']}/workers/scripts/one/versions",
        headers=auth(account["apiToken"]),
        **worker(30_000, "c"),
    )
    refused(versions_upload, "Storage quota", "Workers' code")
    assert len(version_ids(api, account, "one")) == 1
    assert deploy(api, account, "two", size=10_000).status_code == 200
    with quota_platform.db.read() as conn:
        usage = stored_bytes(conn, account["id"], 0)
    assert 40_000 <= usage["Workers' code"] <= 41_000


# -- static assets ---------------------------------------------------------------------------------


def open_session(
    api: TestClient, account: dict[str, Any], files: dict[str, bytes]
) -> httpx.Response:
    body = {"manifest": manifest({p: (d, "text/plain") for p, d in files.items()})}
    return api.post(
        f"accounts/{account['id']}/workers/scripts/site/assets-upload-session",
        headers=auth(account["apiToken"]),
        json=body,
    )


def upload_bucket(
    api: TestClient, account: dict[str, Any], jwt: str, files: dict[str, bytes]
) -> httpx.Response:
    import base64

    hashes = manifest({p: (d, "text/plain") for p, d in files.items()})
    parts = [
        (hashes[p]["hash"], (hashes[p]["hash"], base64.b64encode(d), "text/plain"))
        for p, d in files.items()
    ]
    return api.post(
        f"accounts/{account['id']}/workers/assets/upload?base64=true",
        headers=auth(jwt),
        files=parts,
    )


@pytest.mark.parametrize("limits", [{"quota_asset_files_temporary": 3}])
def test_asset_files_quota(api: TestClient, account: dict[str, Any]) -> None:
    files = {f"/f{i}.txt": f"file {i}".encode() for i in range(4)}
    refused(open_session(api, account, files), "0 static asset files", "limit of 3", "adds 4")
    session = open_session(api, account, dict(list(files.items())[:3]))
    assert session.status_code == 200, session.text
    upload = upload_bucket(
        api, account, session.json()["result"]["jwt"], dict(list(files.items())[:3])
    )
    assert upload.status_code == 201, upload.text


@pytest.mark.parametrize("limits", [{"quota_bytes_temporary": 10_000}])
def test_asset_bytes_quota_at_session_and_at_upload(
    api: TestClient, account: dict[str, Any], quota_platform: Platform
) -> None:
    big = {"/big.bin": b"b" * 11_000}
    refused(open_session(api, account, big), "Storage quota", "10.7 KiB")
    files = {"/a.txt": b"a" * 6000}
    session = open_session(api, account, files)
    assert session.status_code == 200, session.text
    # Meanwhile KV fills the account: the upload itself is refused, and nothing is stored.
    ns = new_namespace(api, account)
    assert put_value(api, account, ns, "k", b"k" * 6000).status_code == 200
    refused(upload_bucket(api, account, session.json()["result"]["jwt"], files), "Storage quota")
    with quota_platform.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(tables.asset_files)).scalar_one() == 0
    delete_value(api, account, ns, "k")
    upload = upload_bucket(api, account, session.json()["result"]["jwt"], files)
    assert upload.status_code == 201, upload.text


# -- temporary vs permanent ------------------------------------------------------------------------


def test_temporary_accounts_get_lower_limits_by_default() -> None:
    temporary, permanent = quota_for(Settings(), "temporary"), quota_for(Settings(), "permanent")
    for field in temporary.__dataclass_fields__:
        assert getattr(temporary, field) < getattr(permanent, field), field


@pytest.mark.parametrize("limits", [{"quota_workers_temporary": 1, "quota_workers_permanent": 2}])
def test_temporary_and_permanent_limits_differ(
    api: TestClient, account: dict[str, Any], quota_platform: Platform
) -> None:
    assert deploy(api, account, "one").status_code == 200
    refused(deploy(api, account, "two"), "temporary account", "limit of 1", "Claiming")
    created, token = quota_platform.services.accounts.create_permanent("keeper")
    owned = {"id": created.id, "apiToken": token}
    assert deploy(api, owned, "one").status_code == 200
    assert deploy(api, owned, "two").status_code == 200
    message = refused(deploy(api, owned, "three"), "permanent account", "limit of 2")
    assert "Claiming" not in message


@pytest.mark.parametrize(
    "limits", [{"quota_workers_permanent": 2, "quota_bytes_permanent": 20_000}]
)
def test_a_claim_that_would_move_the_target_over_its_quotas_is_a_problem_to_solve_first(
    api: TestClient, account: dict[str, Any], quota_platform: Platform
) -> None:
    target, token = quota_platform.services.accounts.create_permanent("keeper")
    assert deploy(api, {"id": target.id, "apiToken": token}, "home").status_code == 200
    assert deploy(api, account, "one").status_code == 200
    ctx = quota_platform.services.ctx
    with quota_platform.db.read() as conn:
        source = get_account(conn, account["id"])
        assert source is not None
        plan = plan_transfer(conn, ctx, source, target, {}, {})
    assert plan.ready, plan.problems
    response = deploy(api, account, "two", size=25_000)
    assert response.status_code == 200, response.text
    with quota_platform.db.read() as conn:
        plan = plan_transfer(conn, ctx, source, target, {}, {})
    assert not plan.ready
    assert any("3 Workers, over its limit of 2" in p for p in plan.problems), plan.problems
    assert any("stored bytes, over its limit of 20000" in p for p in plan.problems), plan.problems
