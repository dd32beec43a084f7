"""KV bulk writes: an item cap, every field checked, all or nothing (issue 10, items 2 and 3)."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.abuse.raw_http import provision as provision_live
from tests.abuse.raw_http import send
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision
from tests.e2e.conftest import running_server


def _namespace(client: TestClient, account: dict[str, Any]) -> str:
    created = client.post(
        f"accounts/{account['id']}/storage/kv/namespaces",
        json={"title": "bulk"},
        headers=auth(account["apiToken"]),
    )
    assert created.status_code == 200, created.text
    namespace_id: str = created.json()["result"]["id"]
    return namespace_id


def _keys(client: TestClient, account: dict[str, Any], namespace: str) -> list[str]:
    listed = client.get(
        f"accounts/{account['id']}/storage/kv/namespaces/{namespace}/keys",
        headers=auth(account["apiToken"]),
    )
    return [k["name"] for k in listed.json()["result"]]


BAD_ITEMS: list[tuple[str, dict[str, Any]]] = [
    ("expiration_ttl 10^30", {"key": "x", "value": "v", "expiration_ttl": 10**30}),
    ("expiration 10^30", {"key": "x", "value": "v", "expiration": 10**30}),
    ("expiration 2^62", {"key": "x", "value": "v", "expiration": 2**62}),
    ("string expiration", {"key": "x", "value": "v", "expiration": "1700000000"}),
    ("list TTL", {"key": "x", "value": "v", "expiration_ttl": [120]}),
    ("boolean TTL", {"key": "x", "value": "v", "expiration_ttl": True}),
    ("float TTL", {"key": "x", "value": "v", "expiration_ttl": 120.5}),
    ("bad base64", {"key": "x", "value": "not base64!", "base64": True}),
    ("string base64 flag", {"key": "x", "value": "dg==", "base64": "yes"}),
    ("number value", {"key": "x", "value": 12}),
    ("object value", {"key": "x", "value": {"a": 1}}),
    ("number key", {"key": 12, "value": "v"}),
    ("long key", {"key": "k" * 513, "value": "v"}),
    ("deep metadata", {"key": "x", "value": "v", "metadata": json.loads("[" * 80 + "]" * 80)}),
]


@pytest.mark.parametrize("item", [item for _, item in BAD_ITEMS], ids=[n for n, _ in BAD_ITEMS])
def test_a_bad_item_is_400_and_nothing_is_written(client: TestClient, item: dict[str, Any]) -> None:
    account = provision(client)["account"]
    namespace = _namespace(client, account)
    good = [{"key": f"good{i}", "value": "v"} for i in range(5)]
    response = client.put(
        f"accounts/{account['id']}/storage/kv/namespaces/{namespace}/bulk",
        content=json.dumps([*good, item]),
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == 10021
    assert _keys(client, account, namespace) == []


def test_a_failure_inside_the_write_leaves_nothing(client: TestClient) -> None:
    """An item that only the write itself refuses (a TTL under 60 s) still rolls back the rest."""
    account = provision(client)["account"]
    namespace = _namespace(client, account)
    items = [{"key": f"k{i}", "value": "v"} for i in range(50)]
    items.append({"key": "short", "value": "v", "expiration_ttl": 5})
    response = client.put(
        f"accounts/{account['id']}/storage/kv/namespaces/{namespace}/bulk",
        content=json.dumps(items),
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 400, response.text
    assert _keys(client, account, namespace) == []


def test_the_item_cap(tmp_path: Path, clock: ManualClock) -> None:
    platform = Platform.create(make_settings(tmp_path, max_kv_bulk_items=3), clock=clock)
    with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
        account = provision(client)["account"]
        namespace = _namespace(client, account)
        url = f"accounts/{account['id']}/storage/kv/namespaces/{namespace}/bulk"
        items = [{"key": f"k{i}", "value": "v"} for i in range(4)]
        too_many = client.put(url, content=json.dumps(items), headers=auth(account["apiToken"]))
        assert too_many.status_code == 400
        assert "at most 3" in too_many.json()["errors"][0]["message"]
        deleted = client.request(
            "DELETE",
            url,
            content=json.dumps([i["key"] for i in items]),
            headers=auth(account["apiToken"]),
        )
        assert deleted.status_code == 400
        fits = client.put(url, content=json.dumps(items[:3]), headers=auth(account["apiToken"]))
        assert fits.status_code == 200, fits.text
        assert sorted(_keys(client, account, namespace)) == ["k0", "k1", "k2"]
    platform.db.dispose()


def test_good_items_with_every_field(client: TestClient) -> None:
    account = provision(client)["account"]
    namespace = _namespace(client, account)
    items = [
        {"key": "plain", "value": "v"},
        {"key": "b64", "value": base64.b64encode(b"\x00\xff").decode(), "base64": True},
        {"key": "ttl", "value": "v", "expiration_ttl": 120, "metadata": {"a": [1, 2]}},
    ]
    response = client.put(
        f"accounts/{account['id']}/storage/kv/namespaces/{namespace}/bulk",
        content=json.dumps(items),
        headers=auth(account["apiToken"]),
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["successful_key_count"] == 3
    value = client.get(
        f"accounts/{account['id']}/storage/kv/namespaces/{namespace}/values/b64",
        headers=auth(account["apiToken"]),
    )
    assert value.content == b"\x00\xff"


BULK_ITEMS = 3_000  # the property does not depend on the count; the time of a write does


def _count_keys(api_url: str, account: dict[str, Any], namespace: str) -> int:
    count, cursor = 0, ""
    with httpx.Client(base_url=api_url + "/client/v4", timeout=60) as client:
        while True:
            page = client.get(
                f"/accounts/{account['id']}/storage/kv/namespaces/{namespace}/keys",
                params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
                headers=auth(account["apiToken"]),
            ).json()
            count += len(page["result"])
            cursor = page["result_info"]["cursor"]
            if not cursor:
                return count


@pytest.mark.parametrize("delay", [0.5, 2.0])
def test_kill_9_during_a_bulk_write_leaves_all_or_nothing(tmp_path: Path, delay: float) -> None:
    items = [{"key": f"key-{i:05d}", "value": "v" * 1000} for i in range(BULK_ITEMS)]
    body = json.dumps(items).encode()
    with running_server(tmp_path, ttl=3600, runtime=False) as server:
        account = provision_live(server.api_url)
        with httpx.Client(base_url=server.api_url + "/client/v4", timeout=30) as client:
            namespace = client.post(
                f"/accounts/{account['id']}/storage/kv/namespaces",
                json={"title": "crash"},
                headers=auth(account["apiToken"]),
            ).json()["result"]["id"]
        answered: list[int] = []

        def write() -> None:
            try:
                answer = send(
                    server.api_port,
                    "PUT",
                    f"/client/v4/accounts/{account['id']}/storage/kv/namespaces/{namespace}/bulk",
                    {"Authorization": f"Bearer {account['apiToken']}"},
                    [body],
                    length=len(body),
                )
                answered.append(answer.status)
            except AssertionError:
                pass  # killed before it answered

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(delay)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        writer.join(timeout=60)
    with running_server(tmp_path, ttl=3600, runtime=False) as again:
        stored = _count_keys(again.api_url, account, namespace)
    assert stored in (0, BULK_ITEMS), f"{stored} of {BULK_ITEMS} keys survived the crash"
    if answered == [200]:
        assert stored == BULK_ITEMS


def test_a_bulk_delete_is_one_transaction(client: TestClient) -> None:
    """Absent keys are no error; the present ones all go (one DELETE per batch of keys)."""
    account = provision(client)["account"]
    namespace = _namespace(client, account)
    url = f"accounts/{account['id']}/storage/kv/namespaces/{namespace}/bulk"
    items = [{"key": f"k{i:04d}", "value": "v"} for i in range(1200)]
    written = client.put(url, content=json.dumps(items), headers=auth(account["apiToken"]))
    assert written.status_code == 200, written.text
    doomed = [i["key"] for i in items[:1100]] + ["never-written", "k0000"]
    deleted = client.post(
        url + "/delete", content=json.dumps(doomed), headers=auth(account["apiToken"])
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["result"]["successful_key_count"] == len(doomed)
    assert sorted(_keys(client, account, namespace)) == [i["key"] for i in items[1100:]]


@pytest.mark.parametrize("delay", [0.5, 2.0])
def test_kill_9_during_a_bulk_delete_leaves_all_or_nothing(tmp_path: Path, delay: float) -> None:
    items = [{"key": f"key-{i:05d}", "value": "v" * 1000} for i in range(BULK_ITEMS)]
    body = json.dumps([item["key"] for item in items]).encode()
    with running_server(tmp_path, ttl=3600, runtime=False) as server:
        account = provision_live(server.api_url)
        path = f"/accounts/{account['id']}/storage/kv/namespaces"
        headers = {"Authorization": f"Bearer {account['apiToken']}"}
        with httpx.Client(base_url=server.api_url + "/client/v4", timeout=60) as client:
            namespace = client.post(path, json={"title": "crash"}, headers=headers).json()
            path += f"/{namespace['result']['id']}/bulk"
            written = client.put(path, content=json.dumps(items), headers=headers)
            assert written.status_code == 200, written.text
        answered: list[int] = []

        def delete_all() -> None:
            try:
                answer = send(
                    server.api_port,
                    "POST",
                    f"/client/v4{path}/delete",
                    headers,
                    [body],
                    length=len(body),
                )
                answered.append(answer.status)
            except AssertionError:
                pass  # killed before it answered

        deleter = threading.Thread(target=delete_all)
        deleter.start()
        time.sleep(delay)  # where the crash lands: either answer is correct, never a part
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        deleter.join(timeout=60)
    with running_server(tmp_path, ttl=3600, runtime=False) as again:
        stored = _count_keys(again.api_url, account, namespace["result"]["id"])
    assert stored in (0, BULK_ITEMS), f"{stored} of {BULK_ITEMS} keys survived the crash"
    if answered == [200]:
        assert stored == 0
