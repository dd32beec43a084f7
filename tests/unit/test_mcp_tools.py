"""The MCP tools in process (the SDK's in-memory client): schemas, and every failure a tool error
with a code, the server answering on afterwards. The real thing is tests/e2e/test_mcp.py."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from mayfly.app import Platform
from mayfly.mcp.backend import Backend
from mayfly.mcp.http import bearer
from mayfly.mcp.server import build_server
from tests.unit.cli_support import API, app_transport

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
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result
    assert isinstance(result.structured_content, dict), result
    error: dict[str, Any] = result.structured_content["error"]
    return error


def with_client(backend: Backend, scenario: Callable[[Client], Awaitable[None]]) -> None:
    async def run() -> None:
        async with Client(build_server(lambda ctx: backend)) as client:
            await scenario(client)

    anyio.run(run)


def test_every_tool_has_input_and_output_schemas(tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None, tool.name
        deploy = tools["deploy"].input_schema["properties"]
        assert set(deploy) == {"path", "files", "name", "main", "temporary", "event"}
        assert deploy["temporary"]["default"] is True
        assert "event code" in deploy["event"]["description"]
        output = tools["deploy"].output_schema or {}
        assert set(output["properties"]) >= {
            "url",
            "claim_url",
            "expires_at",
            "account_name",
            "account_id",
            "version_id",
            "created_or_reused",
        }
        assert tools["logs"].input_schema["properties"]["seconds"]["default"] == 10
        assert tools["logs"].input_schema["properties"]["max_events"]["default"] == 100

    with_client(Backend(UNREACHABLE, directory=tmp_path), scenario)


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({}, "invalid_arguments"),
        ({"path": "x", "files": {"index.js": ""}}, "invalid_arguments"),
        ({"files": {}}, "invalid_arguments"),
        ({"files": {"../escape.js": "x"}}, "invalid_file_name"),
        ({"files": {"/etc/passwd": "x"}}, "invalid_file_name"),
        ({"files": {"a.js": "x", "b.js": "y"}}, "project_invalid"),  # which one is the entry?
        ({"path": "/no/such/project"}, "project_invalid"),
    ],
)
def test_bad_deploy_arguments_are_tool_errors(
    tmp_path: Path, arguments: dict[str, Any], code: str
) -> None:
    async def scenario(client: Client) -> None:
        error = error_of(await client.call_tool("deploy", arguments))
        assert error["code"] == code
        assert error["message"]

    with_client(Backend(UNREACHABLE, directory=tmp_path), scenario)


def test_failures_carry_a_code_and_the_server_answers_on(tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        error = error_of(await client.call_tool("status", {}))
        assert error["code"] == "no_credentials"
        assert "deploy" in error["message"]
        error = error_of(await client.call_tool("logs", {"seconds": 0}))
        assert error["code"] == "invalid_arguments"
        assert "seconds" in error["message"]
        project = tmp_path / "p"
        project.mkdir()
        (project / "index.js").write_text("export default { fetch() { return new Response('') } }")
        error = error_of(
            await client.call_tool(
                "deploy", {"path": str(project), "name": "w", "main": "index.js"}
            )
        )
        assert error["code"] == "api_unreachable"
        assert len((await client.list_tools()).tools) == len(TOOLS)

    with_client(Backend(UNREACHABLE, directory=tmp_path), scenario)


def test_deploy_with_an_event_code(platform: Platform, tmp_path: Path) -> None:
    """`event` as `mayfly deploy --temporary --event`: the event's account, once per event."""
    events = platform.services.provisioning.events
    room = events.create("Room", 1, 600, organiser_email="org@example.com")
    files = {"index.js": "export default { fetch() { return new Response('hi') } }"}
    arguments = {"files": files, "name": "w", "event": room.code}

    def refused(backend: Backend, arguments: dict[str, Any], code: int | str) -> None:
        async def scenario(client: Client) -> None:
            error = error_of(await client.call_tool("deploy", arguments))
            assert error["code"] == code, error

        with_client(backend, scenario)

    with app_transport(platform.public_app()) as transport:
        first = Backend(API, directory=tmp_path / "one", transport=transport)

        async def deploys(client: Client) -> None:
            result = await client.call_tool("deploy", arguments)
            assert not result.is_error, result
            assert isinstance(result.structured_content, dict)
            assert result.structured_content["created_or_reused"] == "created"
            [view] = events.organised_by("org@example.com")
            assert [a.account.id for a in view.accounts] == [
                result.structured_content["account_id"]
            ]

        with_client(first, deploys)
        # The account is cached now: an event code would not apply to it, so nothing is made.
        refused(first, arguments, "event_conflict")
        second = Backend(API, directory=tmp_path / "two", transport=transport)
        refused(second, {**arguments, "temporary": False}, "invalid_arguments")
        refused(second, arguments, 1040)  # the event's one account is used
        with_token = Backend(API, token="mfp_x", directory=tmp_path / "three", transport=transport)
        refused(with_token, arguments, "event_conflict")
    assert [e.accounts_used for e in events.list_all() if e.id == room.id] == [1]


def test_remote_backend_refuses_paths_on_the_server(tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        error = error_of(await client.call_tool("deploy", {"path": str(tmp_path)}))
        assert error["code"] == "path_not_allowed"

    with_client(Backend(UNREACHABLE, token="mft_x", directory=tmp_path, remote=True), scenario)


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"index.ts": "export default {} satisfies object;"}, "bundling_unavailable"),
        (
            {
                "wrangler.toml": 'name = "w"\nmain = "index.js"\n[assets]\ndirectory = "/etc"\n',
                "index.js": "export default {};",
            },
            "project_invalid",
        ),
    ],
)
def test_remote_files_read_nothing_outside_them(
    tmp_path: Path, files: dict[str, str], code: str
) -> None:
    async def scenario(client: Client) -> None:
        error = error_of(await client.call_tool("deploy", {"files": files}))
        assert error["code"] == code, error

    with_client(Backend(UNREACHABLE, token="mft_x", directory=tmp_path, remote=True), scenario)


def test_inline_files_ignore_a_wrangler_file_above_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    above = tmp_path / "tmp"
    above.mkdir()
    (above / "wrangler.toml").write_text('name = "other"\ncompatibility_date = "bogus"\n')
    monkeypatch.setattr(tempfile, "tempdir", str(above))

    async def scenario(client: Client) -> None:
        result = await client.call_tool("deploy", {"files": {"index.js": "export default {};"}})
        assert error_of(result)["code"] == "api_unreachable"  # read fine; then the upload fails

    with_client(Backend(UNREACHABLE, directory=tmp_path), scenario)


def test_an_unexpected_exception_is_a_tool_error_not_a_crash(tmp_path: Path) -> None:
    calls = 0

    def backend_for(ctx: Any) -> Backend:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return Backend(UNREACHABLE, directory=tmp_path)

    async def run() -> None:
        async with Client(build_server(backend_for)) as client:
            error = error_of(await client.call_tool("versions", {}))
            assert error == {"code": "internal_error", "message": "RuntimeError: boom"}
            assert error_of(await client.call_tool("status", {}))["code"] == "no_credentials"

    anyio.run(run)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer mft_abc", "mft_abc"),
        ("bearer  mfp_abc ", "mfp_abc"),
        ("Basic dXNlcg==", None),
        ("Bearer", None),
        ("", None),
    ],
)
def test_bearer(header: str, token: str | None) -> None:
    assert bearer({"authorization": header}) == token
    assert bearer(None) is None
