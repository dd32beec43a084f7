"""/mcp keeps nothing per agent between requests. Its stateful sessions were one pool for every
agent (10,000, each kept 30 minutes after its last request): one free temporary token opened 300
in 5 s, so all of them in minutes, and every other agent's `initialize` then got 503 for half an
hour. Stateless, an `initialize` opens nothing and every call is served on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.abuse.live_server import live_server

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "flood", "version": "1"},
    },
}


def mcp_client(token: str) -> httpx.Client:
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
    }
    return httpx.Client(headers=headers, timeout=30)


def result_of(response: httpx.Response) -> Any:
    """The JSON-RPC result of a response sent as JSON or as one SSE event."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        return response.json()["result"]
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
    return httpx.Response(200, content=data[-1]).json()["result"]


def test_opening_requests_leave_no_session_behind(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        attacker, agent = server.provision(), server.provision()
        endpoint = server.api_url + "/mcp"
        with mcp_client(attacker["apiToken"]) as flood:
            for _ in range(50):
                opened = flood.post(endpoint, json=INIT)
                assert result_of(opened)["serverInfo"]
                assert "mcp-session-id" not in opened.headers
        with mcp_client(agent["apiToken"]) as client:
            assert result_of(client.post(endpoint, json=INIT))["serverInfo"]
            listed = client.post(endpoint, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            assert "deploy" in {tool["name"] for tool in result_of(listed)["tools"]}
            call = {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "status", "arguments": {}},
            }
            status = result_of(client.post(endpoint, json=call))
            assert status["structuredContent"]["account_id"] == agent["id"]


def test_only_post_is_served_and_nothing_else_is_held_open(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        agent = server.provision()
        with mcp_client(agent["apiToken"]) as client:
            for method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"):
                # Stateless, a GET stream would never carry anything, and was held for ever.
                refused = client.request(method, server.api_url + "/mcp", timeout=10)
                assert refused.status_code == 405, (method, refused.text)
                assert refused.headers["allow"] == "POST"
                if method != "HEAD":
                    assert refused.json()["errors"][0]["code"] == 10405
