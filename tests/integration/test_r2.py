"""R2 through the v4 API (what `wrangler r2 bucket …` and `r2 object … --remote` send), and what an
account owns, owned consistently: quotas count buckets and bytes, the reaper leaves no row or blob,
a claim moves buckets (renamed on a clash) and keeps R2 and service bindings pointing at them."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.identity.accounts import get_account
from mayfly.storage import resource_tables, tables
from tests.clock import ManualClock
from tests.conftest import auth, provision, upload_body
from tests.integration.test_claim_support import cheap_password_hashing, claim_path, web
from tests.integration.test_claims import _owner_with_account, db_client, db_platform

__all__ = ["db_client", "db_platform"]  # fixtures shared with test_claims


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def buckets_path(account: dict[str, Any]) -> str:
    return f"accounts/{account['id']}/r2/buckets"


def create_bucket(client: TestClient, account: dict[str, Any], name: str) -> dict[str, Any]:
    response = client.post(
        buckets_path(account), headers=auth(account["apiToken"]), json={"name": name}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def put_object(
    client: TestClient, account: dict[str, Any], bucket: str, key: str, data: bytes, **headers: str
) -> Any:
    return client.put(
        f"{buckets_path(account)}/{bucket}/objects/{key}",
        headers={**auth(account["apiToken"]), **headers},
        content=data,
    )


def error_of(response: Any) -> tuple[int, int]:
    return response.status_code, response.json()["errors"][0]["code"]


def test_buckets_create_list_get_delete(client: TestClient, account: dict[str, Any]) -> None:
    token = auth(account["apiToken"])
    created = create_bucket(client, account, "photos")
    assert created["name"] == "photos" and created["creation_date"].endswith("Z")
    create_bucket(client, account, "assets-2")
    listed = client.get(buckets_path(account), headers=token).json()["result"]["buckets"]
    assert [b["name"] for b in listed] == ["assets-2", "photos"]
    one = client.get(f"{buckets_path(account)}/photos", headers=token)
    assert one.json()["result"]["name"] == "photos"
    assert error_of(client.post(buckets_path(account), headers=token, json={"name": "photos"})) == (
        409,
        10004,
    )
    for bad in ("UPPER", "a", "-x-", "has_underscore", 5):
        refused = client.post(buckets_path(account), headers=token, json={"name": bad})
        assert error_of(refused) == (400, 10005), bad
    assert error_of(client.get(f"{buckets_path(account)}/nope", headers=token)) == (404, 10006)
    assert client.delete(f"{buckets_path(account)}/assets-2", headers=token).status_code == 200
    assert error_of(client.delete(f"{buckets_path(account)}/assets-2", headers=token)) == (
        404,
        10006,
    )


def test_objects_put_get_delete_as_wrangler_sends_them(
    client: TestClient, account: dict[str, Any]
) -> None:
    token = auth(account["apiToken"])
    create_bucket(client, account, "files")
    stored = put_object(
        client,
        account,
        "files",
        "dir/a b.txt",
        b"hello",
        **{"content-type": "text/plain", "cache-control": "no-cache"},
    )
    assert stored.status_code == 200, stored.text
    md5 = hashlib.md5(b"hello").hexdigest()
    assert stored.json()["result"]["etag"] == md5
    got = client.get(f"{buckets_path(account)}/files/objects/dir/a%20b.txt", headers=token)
    assert got.status_code == 200 and got.content == b"hello"
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["cache-control"] == "no-cache"
    assert got.headers["etag"] == f'"{md5}"'
    ranged = client.get(
        f"{buckets_path(account)}/files/objects/dir/a%20b.txt",
        headers={**token, "range": "bytes=1-3"},
    )
    assert ranged.status_code == 206 and ranged.content == b"ell"
    assert ranged.headers["content-range"] == "bytes 1-3/5"
    # A non-empty bucket is not deleted.
    assert error_of(client.delete(f"{buckets_path(account)}/files", headers=token)) == (409, 10008)
    deleted = client.delete(f"{buckets_path(account)}/files/objects/dir/a%20b.txt", headers=token)
    assert deleted.status_code == 200
    missing = client.get(f"{buckets_path(account)}/files/objects/dir/a%20b.txt", headers=token)
    assert error_of(missing) == (404, 10007)
    assert error_of(put_object(client, account, "nope", "k", b"x")) == (404, 10006)
    assert client.delete(f"{buckets_path(account)}/files", headers=token).status_code == 200


def test_another_account_cannot_reach_a_bucket(client: TestClient, account: dict[str, Any]) -> None:
    create_bucket(client, account, "private")
    put_object(client, account, "private", "secret", b"mine")
    thief = provision(client)["account"]
    mine = f"{buckets_path(account)}/private/objects/secret"
    assert client.get(mine, headers=auth(thief["apiToken"])).status_code in (401, 403)
    theirs = f"{buckets_path(thief)}/private/objects/secret"
    assert error_of(client.get(theirs, headers=auth(thief["apiToken"]))) == (404, 10006)


def test_quotas_count_buckets_and_bytes(
    platform: Platform, client: TestClient, account: dict[str, Any]
) -> None:
    settings = platform.settings
    for i in range(settings.quota_r2_buckets_temporary):
        create_bucket(client, account, f"bucket-{i}")
    over = client.post(
        buckets_path(account), headers=auth(account["apiToken"]), json={"name": "one-more"}
    )
    assert error_of(over) == (413, 10440) and "R2 buckets" in over.json()["errors"][0]["message"]
    limit = settings.quota_bytes_temporary
    big = put_object(client, account, "bucket-0", "big", b"x" * (limit + 1))
    assert error_of(big)[1] in (10440, 10413)
    half = b"y" * (limit // 2 + 1)
    assert put_object(client, account, "bucket-0", "half-1", half).status_code == 200
    refused = put_object(client, account, "bucket-1", "half-2", half)
    assert error_of(refused) == (413, 10440) and "R2" in refused.json()["errors"][0]["message"]
    # Replacing an object frees its old bytes first.
    assert put_object(client, account, "bucket-0", "half-1", half[:-1]).status_code == 200


def count(platform: Platform, table: Any, account_id: str) -> int:
    with platform.db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.account_id == account_id)
            ).scalar_one()
        )


def test_deleting_objects_deletes_blobs_no_one_else_needs(
    platform: Platform, client: TestClient, account: dict[str, Any]
) -> None:
    create_bucket(client, account, "bkt-1")
    create_bucket(client, account, "bkt-2")
    put_object(client, account, "bkt-1", "same", b"shared bytes")
    put_object(client, account, "bkt-2", "same", b"shared bytes")  # one blob for both
    assert count(platform, tables.blobs, account["id"]) == 1
    token = auth(account["apiToken"])
    client.delete(f"{buckets_path(account)}/bkt-1/objects/same", headers=token)
    assert count(platform, tables.blobs, account["id"]) == 1
    # A Worker deleted meanwhile does not collect the object's blob with its own.
    client.put(f"accounts/{account['id']}/workers/scripts/w", headers=token, **upload_body())
    client.delete(f"accounts/{account['id']}/workers/scripts/w", headers=token)
    got = client.get(f"{buckets_path(account)}/bkt-2/objects/same", headers=token)
    assert got.content == b"shared bytes"
    client.delete(f"{buckets_path(account)}/bkt-2/objects/same", headers=token)
    assert count(platform, tables.blobs, account["id"]) == 0


def test_the_reaper_leaves_no_row_or_blob(
    db_platform: Platform, db_client: TestClient, clock: ManualClock
) -> None:
    account = provision(db_client)["account"]
    create_bucket(db_client, account, "doomed")
    put_object(db_client, account, "doomed", "k", b"bytes")
    svc = db_platform.services
    with db_platform.db.read() as conn:
        owner = get_account(conn, account["id"])
    assert owner is not None
    bucket_id = svc.r2.bucket_id(owner, "doomed")
    upload = svc.r2_multipart.create(bucket_id, "partial")
    svc.r2_multipart.upload_part(bucket_id, "partial", upload, 1, b"part")
    clock.advance(db_platform.settings.temporary_ttl + 1)
    assert asyncio.run(svc.reaper.run_once()) >= 1
    for table in (
        resource_tables.r2_buckets,
        resource_tables.r2_objects,
        resource_tables.r2_uploads,
        resource_tables.r2_parts,
    ):
        assert count(db_platform, table, account["id"]) == 0, table.name
    assert count(db_platform, tables.blobs, account["id"]) == 0
    assert not (db_platform.settings.data_dir / "blobs" / account["id"]).exists()


def test_a_claim_moves_buckets_and_keeps_bindings_pointing_at_them(
    db_platform: Platform,
    db_client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    cheap_password_hashing(monkeypatch)
    platform, client = db_platform, db_client
    created = provision(client)
    temp = created["account"]
    token = auth(temp["apiToken"])
    create_bucket(client, temp, "media")
    put_object(client, temp, "media", "cat.txt", b"meow")
    for name, bindings in (
        ("hello", []),  # acme has a `hello` too: this one becomes hello-2
        (
            "front",
            [
                {"type": "r2_bucket", "name": "MEDIA", "bucket_name": "media"},
                {"type": "service", "name": "HELLO", "service": "hello"},
            ],
        ),
    ):
        response = client.put(
            f"accounts/{temp['id']}/workers/scripts/{name}",
            headers=token,
            **upload_body(bindings=bindings),
        )
        assert response.status_code == 200, response.text
    with web(platform) as browser:
        acme = _owner_with_account(platform, client, browser)
        create_bucket(client, {"id": acme["id"], "apiToken": acme["token"]}, "media")
        path = claim_path(created)
        preview = browser.get(f"{path}/move?into={acme['id']}").text
        assert "R2 buckets" in preview and "media-2" in preview and "name taken" in preview
        moved = browser.post(path, {"action": "move", "into": acme["id"]})
        assert moved.status_code == 303, moved.text
        detail = browser.get(moved.headers["location"]).text
        assert "R2 buckets" in detail and "media-2" in detail  # the dashboard lists them
    acme_token = auth(acme["token"])
    names = client.get(f"accounts/{acme['id']}/r2/buckets", headers=acme_token).json()
    assert sorted(b["name"] for b in names["result"]["buckets"]) == ["media", "media-2"]
    cat = client.get(
        f"accounts/{acme['id']}/r2/buckets/media-2/objects/cat.txt", headers=acme_token
    )
    assert cat.content == b"meow"
    routing = platform.services.routing
    route = routing.route("front.acme.localhost")
    code = routing.version_code(route.version_id or "")
    bucket_id = code["r2_buckets"][0]["bucket_id"]
    assert platform.services.r2.get_object(bucket_id, "cat.txt").body == b"meow"
    service = code["services"][0]
    assert (
        routing.service_host(service["script_id"], code["version_id"]) == "hello-2.acme.localhost"
    )
    for table in (resource_tables.r2_buckets, resource_tables.r2_objects, tables.blobs):
        assert count(platform, table, temp["id"]) == 0, table.name
