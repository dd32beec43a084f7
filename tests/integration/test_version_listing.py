"""Version listings: paginated, and rendered from what the upload stored (never the blobs)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, provision, upload_body

SCHEDULED = b"export default { async fetch() { return new Response('x'); }, scheduled() {} };\n"


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def versions_url(account: dict[str, Any]) -> str:
    return f"accounts/{account['id']}/workers/scripts/hello/versions"


def upload(client: TestClient, account: dict[str, Any], count: int) -> list[str]:
    """`count` versions of the Worker `hello` (the first PUT creates it); their ids in order."""
    ids = []
    for i in range(count):
        body = upload_body(
            modules={
                "index.js": (SCHEDULED + f"// {i}\n".encode(), "application/javascript+module")
            }
        )
        if i == 0:
            response = client.put(
                versions_url(account).removesuffix("/versions"),
                headers=auth(account["apiToken"]),
                **body,
            )
            assert response.status_code == 200, response.text
            ids.append(response.json()["result"]["deployment_id"])
        else:
            response = client.post(versions_url(account), headers=auth(account["apiToken"]), **body)
            assert response.status_code == 200, response.text
            ids.append(response.json()["result"]["id"])
    return ids


def test_pages_follow_page_and_per_page_and_end(
    client: TestClient, account: dict[str, Any]
) -> None:
    uploaded = upload(client, account, 7)
    seen: list[str] = []
    page = 1
    while True:
        response = client.get(
            versions_url(account) + f"?page={page}&per_page=3",
            headers=auth(account["apiToken"]),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items = body["result"]["items"]
        info = body["result_info"]
        assert info["page"] == page and info["per_page"] == 3
        assert info["total_count"] == 7 and info["total_pages"] == 3
        assert info["count"] == len(items) <= 3
        if not items:
            break
        seen += [item["id"] for item in items]
        page += 1
        assert page < 10, "pagination does not end"
    assert seen == list(reversed(uploaded))  # newest first, each once
    assert page == 4


def test_without_page_parameters_wrangler_gets_the_newest(
    client: TestClient, account: dict[str, Any]
) -> None:
    uploaded = upload(client, account, 5)
    body = client.get(
        versions_url(account) + "?deployable=true", headers=auth(account["apiToken"])
    ).json()
    assert [v["id"] for v in body["result"]["items"]] == list(reversed(uploaded))


@pytest.mark.parametrize("query", ["page=0", "page=x", "per_page=y", "page=99999999999"])
def test_bad_page_parameters_are_400(
    client: TestClient, account: dict[str, Any], query: str
) -> None:
    upload(client, account, 1)
    response = client.get(versions_url(account) + "?" + query, headers=auth(account["apiToken"]))
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_listing_never_reads_blobs(
    client: TestClient, account: dict[str, Any], platform: Platform, monkeypatch: Any
) -> None:
    upload(client, account, 3)

    def forbidden(*args: Any) -> bytes:
        raise AssertionError("a listing read a blob")

    monkeypatch.setattr(platform.services.ctx.blobs, "get", forbidden)
    body = client.get(versions_url(account), headers=auth(account["apiToken"])).json()
    items = body["result"]["items"]
    assert len(items) == 3
    assert all(v["resources"]["script"]["handlers"] == ["fetch", "scheduled"] for v in items)
    assert all(v["metadata"]["author_email"] for v in items)
    one = client.get(
        versions_url(account) + "/" + items[0]["id"], headers=auth(account["apiToken"])
    )
    assert one.json()["result"]["resources"]["script"]["handlers"] == ["fetch", "scheduled"]
