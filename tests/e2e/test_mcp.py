"""`mayfly mcp` with the official MCP Python SDK's client: over stdio (the CLI as a subprocess)
and over streamable HTTP at /mcp on a real `mayfly serve`, with an API token."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.e2e.conftest import MAYFLY, Agent, Server, write_project

pytestmark = pytest.mark.e2e

TOOLS = {
    "deploy",
    "status",
    "logs",
    "kv_get",
    "kv_put",
    "kv_list",
    "secret_put",
    "versions",
    "rollback",
    "delete",
}
INLINE_FILES = {
    "index.js": 'import { shout } from "./lib/shout.js";\n'
    "export default {\n"
    "  async fetch(request) {\n"
    '    console.log("inline handled", new URL(request.url).pathname);\n'
    '    return new Response(shout("inline files"));\n'
    "  },\n"
    "};\n",
    "lib/shout.js": "export const shout = (text) => text.toUpperCase();\n",
}


def first_200(server: Server, url: str, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = server.get_worker(url)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result
    assert isinstance(result.structured_content, dict), result
    error: dict[str, Any] = result.structured_content["error"]
    return error


async def logs_while_requesting(
    session: ClientSession, server: Server, url: str, name: str
) -> dict[str, Any]:
    """Call `logs` and keep requesting the Worker until it answers (a tail only sees live
    requests, and the tool's session opens some time after the call)."""
    done = threading.Event()

    def requests() -> None:
        while not done.wait(0.5):
            server.get_worker(url, "/logged")

    thread = threading.Thread(target=requests, daemon=True)
    thread.start()
    try:
        result = await session.call_tool(
            "logs", {"seconds": 60, "max_events": 1, "name": name}, read_timeout_seconds=120
        )
    finally:
        done.set()
        thread.join(timeout=30)
    return structured(result)


def assert_logged(logs: dict[str, Any], name: str) -> None:
    assert logs["script"] == name
    assert logs["count"] == 1
    [event] = logs["events"]
    messages = [" ".join(map(str, log["message"])) for log in event["logs"]]
    assert "inline handled /logged" in messages, event


async def check_inline_deploy(session: ClientSession, server: Server, name: str) -> str:
    deployed = structured(await session.call_tool("deploy", {"files": INLINE_FILES, "name": name}))
    assert deployed["script"] == name
    response = first_200(server, deployed["url"])
    assert response.status_code == 200, response.text
    assert response.text == "INLINE FILES"
    return str(deployed["url"])


def kv_project(body: str) -> dict[str, str]:
    return {
        "wrangler.toml": 'name = "remote-kv"\nmain = "src/worker.js"\n'
        'compatibility_date = "2025-01-01"\n\n[[kv_namespaces]]\nbinding = "STORE"\n',
        "src/worker.js": "export default { async fetch(request, env) { " + body + " } };\n",
    }


def eventually_text(server: Server, url: str, expected: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        response = server.get_worker(url)
        if response.text == expected or time.monotonic() > deadline:
            assert response.text == expected, (response.status_code, response.text)
            return
        time.sleep(0.1)


async def check_kv_rollback_delete(session: ClientSession, server: Server) -> None:
    """A wrangler.toml among `files` (a KV binding provisioned on deploy), the KV tools through
    that binding, a rollback to the first version and the Worker's deletion."""
    reads_kv = 'return new Response((await env.STORE.get("greeting")) ?? "none");'
    first = structured(await session.call_tool("deploy", {"files": kv_project(reads_kv)}))
    assert first["script"] == "remote-kv"
    eventually_text(server, first["url"], "none")

    missing = structured(await session.call_tool("kv_get", {"key": "greeting"}))
    assert missing["found"] is False
    written = structured(
        await session.call_tool("kv_put", {"key": "greeting", "value": "hi from kv"})
    )
    namespace = written["namespace_id"]
    read = structured(await session.call_tool("kv_get", {"key": "greeting", "binding": "STORE"}))
    assert read == {
        "namespace_id": namespace,
        "key": "greeting",
        "found": True,
        "value": "hi from kv",
    }
    listed = structured(await session.call_tool("kv_list", {"namespace_id": namespace}))
    assert [k["name"] for k in listed["keys"]] == ["greeting"]
    assert listed["complete"] is True
    eventually_text(server, first["url"], "hi from kv")
    wrong = await session.call_tool("kv_get", {"key": "greeting", "binding": "NOPE"})
    assert error_of(wrong)["code"] == "namespace_required"

    second = structured(
        await session.call_tool("deploy", {"files": kv_project('return new Response("v2");')})
    )
    eventually_text(server, first["url"], "v2")
    rolled = structured(await session.call_tool("rollback", {}))
    assert rolled["version_id"] == first["version_id"]
    assert rolled["previous_version_id"] == second["version_id"]
    eventually_text(server, first["url"], "hi from kv")

    deleted = structured(await session.call_tool("delete", {"name": "remote-kv"}))
    assert deleted == {"script": "remote-kv", "deleted": True}
    deadline = time.monotonic() + 20
    while server.get_worker(first["url"]).status_code != 404:
        assert time.monotonic() < deadline, "the deleted Worker still answers"
        await anyio.sleep(0.1)
    gone = await session.call_tool("versions", {"name": "remote-kv"})
    assert error_of(gone)["code"] == 10007


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    anyio.run(scenario)


def test_stdio_tools(agent: Agent, server: Server, tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", "mcp-proj", "hello over mcp from")
    parameters = StdioServerParameters(
        command=str(MAYFLY), args=["mcp"], env=agent.environment(), cwd=str(tmp_path)
    )
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def scenario() -> None:
        async with (
            stdio_client(parameters) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            tools = {tool.name: tool for tool in listed.tools}
            assert set(tools) >= TOOLS
            assert "files" in tools["deploy"].input_schema["properties"]
            assert tools["deploy"].output_schema is not None
            assert "claim_url" in tools["deploy"].output_schema["properties"]

            status = await session.call_tool("status", {})
            assert error_of(status)["code"] == "no_credentials"

            deployed = structured(
                await session.call_tool(
                    "deploy", {"path": str(project)}, progress_callback=on_progress
                )
            )
            assert deployed["created_or_reused"] == "created"
            assert deployed["script"] == "mcp-proj"
            assert deployed["claim_url"].startswith(f"http://localhost:{server.api_port}/claim/")
            assert deployed["version_id"]
            work = [(done, total) for done, total, m in progress if "proof-of-work" in (m or "")]
            assert work, progress
            assert work[-1][0] == work[-1][1] > 0  # the work was reported to its end
            response = first_200(server, deployed["url"])
            assert response.status_code == 200, response.text
            assert response.text == "hello over mcp from mcp-proj"

            url = await check_inline_deploy(session, server, "mcp-inline")

            status_data = structured(await session.call_tool("status", {}))
            assert status_data["account_id"] == deployed["account_id"]
            assert status_data["account_name"] == deployed["account_name"]
            assert status_data["kind"] == "temporary"
            assert status_data["claim_status"] == "unclaimed"
            assert status_data["claim_url"] == deployed["claim_url"]
            assert 0 < status_data["seconds_left"] <= 600

            assert_logged(
                await logs_while_requesting(session, server, url, "mcp-inline"), "mcp-inline"
            )

            listed_versions = structured(await session.call_tool("versions", {}))
            assert listed_versions["script"] == "mcp-inline"  # the last deployed Worker
            assert listed_versions["live_version_id"] == listed_versions["versions"][0]["id"]

            bad = await session.call_tool("deploy", {"path": str(tmp_path / "missing")})
            assert error_of(bad)["code"] == "project_invalid"
            assert "missing" in error_of(bad)["message"]
            unknown = await session.call_tool("versions", {"name": "no-such-worker"})
            assert error_of(unknown)["code"] == 10007
            # The server is still there after the errors.
            assert structured(await session.call_tool("status", {}))["kind"] == "temporary"

    run(scenario)


def test_streamable_http_with_token(agent: Agent, server: Server, tmp_path: Path) -> None:
    first = agent.run("deploy", "--temporary", "--json", cwd=write_project(tmp_path / "p", "tok"))
    assert first.exit_code == 0, first
    token = first.json()["api_token"]
    endpoint = f"{server.api_url}/mcp"

    refused = httpx.post(endpoint, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=30)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == 10000
    wrong = httpx.post(
        endpoint,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"authorization": "Bearer mft_not-a-token"},
        timeout=30,
    )
    assert wrong.status_code == 401

    async def scenario() -> None:
        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(120)
            ) as http,
            streamable_http_client(endpoint, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            assert {tool.name for tool in listed.tools} >= TOOLS

            url = await check_inline_deploy(session, server, "remote-inline")
            status = structured(await session.call_tool("status", {}))
            assert status["account_id"] == first.json()["account_id"]
            assert status["kind"] == "temporary"
            assert status["claim_status"] == "unclaimed"

            logs = await logs_while_requesting(session, server, url, "remote-inline")
            assert_logged(logs, "remote-inline")

            bad = await session.call_tool("deploy", {"path": "/etc"})
            assert error_of(bad)["code"] == "path_not_allowed"
            bad_file = await session.call_tool("deploy", {"files": {"../x.js": "x"}})
            assert error_of(bad_file)["code"] == "invalid_file_name"

            written = structured(
                await session.call_tool("secret_put", {"secret": "API_KEY", "value": "s3cret"})
            )
            assert written == {"script": "remote-inline", "secret": "API_KEY", "written": True}

            await check_kv_rollback_delete(session, server)

    run(scenario)
