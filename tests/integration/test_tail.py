"""Tails: sessions, the trace-v1 WebSocket, filters, and routes that say when to produce events."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, provision, upload_body


def event(message: str, method: str = "GET", outcome: str = "ok") -> dict[str, Any]:
    return {
        "outcome": outcome,
        "eventTimestamp": 1795995116896,
        "logs": [{"message": [message], "level": "log", "timestamp": 1795995116896}],
        "exceptions": [],
        "event": {
            "request": {"url": "http://x/", "method": method, "headers": {"x-test": "1"}},
            "response": {"status": 200},
        },
    }


def test_tail_roundtrip(client: TestClient, platform: Platform) -> None:
    account = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/workers/scripts/hello"
    missing = client.post(base + "/tails", headers=token, content='{"filters":[]}')
    assert missing.json()["errors"][0]["code"] == 10007
    client.put(base, headers=token, **upload_body())
    host = f"hello.{account['name']}.localhost"
    assert platform.services.routing.route(host).tail is False

    created = client.post(
        base + "/tails",
        headers={**token, "content-type": "text/plain;charset=UTF-8"},
        content='{"filters":[{"method":["GET"]}]}',
    ).json()["result"]
    assert created["url"].startswith("ws://localhost:8787/tail/")
    assert platform.services.routing.route(host).tail is True
    path = "/tail/" + created["url"].rsplit("/", 1)[1]
    with client.websocket_connect("ws://testserver" + path, subprotocols=["trace-v1"]) as ws:
        assert ws.accepted_subprotocol == "trace-v1"
        ws.send_text('{"debug":false}')
        hub = platform.services.tails.hub
        assert (
            hub.publish(account["id"], "hello", [event("skipped", method="POST"), event("hi")]) == 1
        )
        received = ws.receive_json()
        assert received["scriptName"] == "hello"
        assert received["logs"][0]["message"] == ["hi"]
        assert received["outcome"] == "ok"
        assert received["exceptions"] == []
    deleted = client.delete(base + f"/tails/{created['id']}", headers=token)
    assert deleted.status_code == 200
    assert platform.services.routing.route(host).tail is False


def test_unknown_tail_url_is_refused(client: TestClient) -> None:
    import pytest
    from starlette.websockets import WebSocketDisconnect

    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("ws://testserver/tail/nope") as ws,
    ):
        ws.receive_text()


def test_other_accounts_cannot_close_a_tail(client: TestClient) -> None:
    a = provision(client)["account"]
    b = provision(client)["account"]
    base = f"accounts/{a['id']}/workers/scripts/hello"
    client.put(base, headers=auth(a["apiToken"]), **upload_body())
    tail_id = client.post(base + "/tails", headers=auth(a["apiToken"]), json={}).json()["result"][
        "id"
    ]
    other = client.delete(
        f"accounts/{b['id']}/workers/scripts/hello/tails/{tail_id}", headers=auth(b["apiToken"])
    )
    assert other.status_code == 404


def test_events_arrive_through_the_internal_api(client: TestClient, platform: Platform) -> None:
    account = provision(client)["account"]
    base = f"accounts/{account['id']}/workers/scripts/hello"
    client.put(base, headers=auth(account["apiToken"]), **upload_body())
    created = client.post(base + "/tails", headers=auth(account["apiToken"]), json={}).json()[
        "result"
    ]
    with TestClient(
        platform.internal_app(), headers={"x-mayfly-internal-secret": platform.internal_secret}
    ) as internal:
        path = "/tail/" + created["url"].rsplit("/", 1)[1]
        with client.websocket_connect("ws://testserver" + path) as ws:
            response = internal.post(
                "http://internal/internal/v1/tail-events",
                json={
                    "account_id": account["id"],
                    "script": "hello",
                    "events": [event("boom", outcome="exception")],
                },
            )
            assert response.json() == {"delivered": 1}
            assert ws.receive_json()["outcome"] == "exception"
