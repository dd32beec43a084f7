"""The MCP tools (official `mcp` SDK), each a thin async shell over `Backend` (backend.py).

A failure is a tool error (`isError`) whose structured content is `{"error": {"code",
"message"}}` with Mayfly's code, never an exception out of the server. The proof of work of a
new temporary account is reported as progress notifications.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict

from mayfly import __version__
from mayfly.mcp.backend import Backend
from mayfly.mcp.kv_tools import NamespaceRef
from mayfly.project import ProjectError
from mayfly.sdk import SDKError, TemporaryAccount

log = logging.getLogger("mayfly.mcp")
P = ParamSpec("P")
R = TypeVar("R")
BackendFor = Callable[[Context], Backend]
PROGRESS_INTERVAL = 0.25  # seconds between two progress notifications

INSTRUCTIONS = (
    "Mayfly runs Cloudflare-Workers-compatible code. `deploy` uploads a Worker (a project "
    "directory with `path`, or inline `files`) and answers its URL; without credentials it "
    "creates a temporary account (no sign-up) and a claim URL a human can open to keep it. "
    "The other tools act on the last deployed Worker unless given `name`."
)


class DeployResult(TypedDict):
    script: str
    url: str | None
    claim_url: str | None
    expires_at: str | None
    account_name: str
    account_id: str
    version_id: str
    created_or_reused: str | None
    messages: list[str]


class StatusResult(TypedDict):
    account_name: str
    account_id: str
    kind: str | None
    expires_at: str | None
    seconds_left: int | None
    claim_url: str | None
    claim_status: str | None


class LogsResult(TypedDict):
    script: str
    count: int
    events: list[dict[str, Any]]


class KVGetResult(TypedDict):
    namespace_id: str
    key: str
    found: bool
    value: str | None


class KVPutResult(TypedDict):
    namespace_id: str
    key: str
    written: bool


class KVKeyItem(TypedDict):
    name: str
    expiration: int | None


class KVListResult(TypedDict):
    namespace_id: str
    keys: list[KVKeyItem]
    complete: bool


class SecretResult(TypedDict):
    script: str
    secret: str
    written: bool


class VersionItem(TypedDict):
    id: str
    number: int | None
    created_on: str | None
    source: str | None
    message: str | None


class VersionsResult(TypedDict):
    script: str
    live_version_id: str | None
    versions: list[VersionItem]


class RollbackResult(TypedDict):
    script: str
    version_id: str
    previous_version_id: str | None
    deployment_id: str | None


class DeleteResult(TypedDict):
    script: str
    deleted: bool


WorkerName = Annotated[
    str | None,
    Field(description="The Worker (default: the last one deployed, else the account's only one)."),
]
NamespaceId = Annotated[str | None, Field(description="The KV namespace's id.")]
Binding = Annotated[
    str | None,
    Field(
        description="A KV binding of the Worker, instead of `namespace_id` (default: its only one)."
    ),
]


def error_result(code: int | str, message: str) -> CallToolResult:
    error = {"code": code, "message": message}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps({"error": error}))],
        structured_content={"error": error},
        is_error=True,
    )


def reporting_errors(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn what a tool raises into a tool error with Mayfly's code and message."""

    @functools.wraps(tool)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await tool(*args, **kwargs)
        except (SDKError, ProjectError) as exc:
            result = error_result(exc.code, exc.message)
        except OSError as exc:
            result = error_result("os_error", str(exc))
        except Exception as exc:  # a tool never takes the server down
            log.exception("MCP tool %s failed", tool.__name__)
            result = error_result("internal_error", f"{type(exc).__name__}: {exc}")
        # MCPServer passes a CallToolResult through as it is (and skips output validation).
        return cast(R, result)

    return wrapper


class ProgressListener:
    """The SDK's Listener, as MCP progress notifications (sent from the worker thread)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.notices: list[str] = []
        self._task = ""
        self._last = 0.0

    def _progress(self, done: float, total: float | None, message: str) -> None:
        try:
            anyio.from_thread.run(self.ctx.report_progress, done, total, message)
        except Exception:  # progress is best effort; the client may be gone
            log.debug("could not send a progress notification", exc_info=True)

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def begin(self, task: str, total: int = 0) -> None:
        self._task = task
        self._last = time.monotonic()
        self._progress(0, total or None, task)

    def advance(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL or done == total:
            self._last = now
            self._progress(done, total, self._task)

    def end(self, task: str, seconds: float) -> None:
        pass

    def temporary_account(self, account: TemporaryAccount, created: bool) -> None:
        pass


async def in_thread(call: Callable[[], R]) -> R:
    return await anyio.to_thread.run_sync(call)


def build_server(backend_for: BackendFor) -> MCPServer:
    """The MCP server; `backend_for(ctx)` gives the Backend a call runs against."""
    server: MCPServer = MCPServer(
        "mayfly", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    async def run(
        ctx: Context,
        call: Callable[Concatenate[Backend, ProgressListener, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """`call(backend, listener, …)` in a worker thread, its progress sent to the client."""
        backend = backend_for(ctx)
        listener = ProgressListener(ctx)
        return await in_thread(lambda: call(backend, listener, *args, **kwargs))

    @server.tool(
        description="Deploy a Worker and answer its URL. Give `path` (a directory with a "
        "wrangler.toml/json/jsonc, or with `name` and `main`) or `files` ({relative path: "
        "content}, optionally with a wrangler.toml). With no credentials and temporary=true, a "
        "temporary account is created (proof of work, reported as progress) and reused after.",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    @reporting_errors
    async def deploy(
        ctx: Context,
        path: Annotated[str | None, Field(description="A project directory.")] = None,
        files: Annotated[
            dict[str, str] | None,
            Field(description="The project's files, {relative path: text}, instead of `path`."),
        ] = None,
        name: Annotated[str | None, Field(description="The Worker's name.")] = None,
        main: Annotated[str | None, Field(description="The entry module.")] = None,
        temporary: Annotated[
            bool, Field(description="Create a temporary account when there are no credentials.")
        ] = True,
        event: Annotated[
            str | None,
            Field(
                description="An event code from an organiser: the new temporary account counts "
                "against the event's budget instead of this address's limit and lives for the "
                "event's TTL (as `mayfly deploy --temporary --event CODE`)."
            ),
        ] = None,
    ) -> DeployResult:
        backend = backend_for(ctx)
        listener = ProgressListener(ctx)
        result = await in_thread(
            lambda: backend.deploy(
                listener,
                path=path,
                files=files,
                name=name,
                main=main,
                temporary=temporary,
                event=event,
            )
        )
        result["messages"] = [*listener.notices, *result["messages"]]
        return cast(DeployResult, result)

    @server.tool(
        description="The account in use: name, id, kind, expiry, seconds left, claim URL and "
        "claim status (as `mayfly whoami --json`).",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    @reporting_errors
    async def status(ctx: Context) -> StatusResult:
        return cast(StatusResult, await run(ctx, Backend.status))

    @server.tool(
        description="The Worker's live logs for a while: every request's console output, "
        "exceptions and outcome during the next `seconds` (nothing is stored: make the "
        "requests while this runs).",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    @reporting_errors
    async def logs(
        ctx: Context,
        seconds: Annotated[int, Field(description="How long to listen (1–120).")] = 10,
        max_events: Annotated[int, Field(description="Stop after this many events.")] = 100,
        name: WorkerName = None,
    ) -> LogsResult:
        result = await run(ctx, Backend.logs, seconds=seconds, max_events=max_events, name=name)
        return cast(LogsResult, result)

    @server.tool(
        description="Read a KV value (as text).", annotations=ToolAnnotations(read_only_hint=True)
    )
    @reporting_errors
    async def kv_get(
        ctx: Context,
        key: str,
        namespace_id: NamespaceId = None,
        binding: Binding = None,
        name: WorkerName = None,
    ) -> KVGetResult:
        ref = NamespaceRef(namespace_id, binding, name)
        return cast(KVGetResult, await run(ctx, Backend.kv_get, key=key, ref=ref))

    @server.tool(description="Write a KV value (text).")
    @reporting_errors
    async def kv_put(
        ctx: Context,
        key: str,
        value: str,
        namespace_id: NamespaceId = None,
        binding: Binding = None,
        name: WorkerName = None,
        expiration_ttl: Annotated[
            int | None, Field(description="Seconds until the value expires (at least 60).")
        ] = None,
    ) -> KVPutResult:
        ref = NamespaceRef(namespace_id, binding, name)
        result = await run(
            ctx, Backend.kv_put, key=key, value=value, ref=ref, expiration_ttl=expiration_ttl
        )
        return cast(KVPutResult, result)

    @server.tool(
        description="List the keys of a KV namespace.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    @reporting_errors
    async def kv_list(
        ctx: Context,
        prefix: str = "",
        limit: Annotated[int, Field(ge=1, le=10000)] = 1000,
        namespace_id: NamespaceId = None,
        binding: Binding = None,
        name: WorkerName = None,
    ) -> KVListResult:
        ref = NamespaceRef(namespace_id, binding, name)
        result = await run(ctx, Backend.kv_list, prefix=prefix, limit=limit, ref=ref)
        return cast(KVListResult, result)

    @server.tool(
        description="Set a secret of the Worker (a new version with the secret is deployed)."
    )
    @reporting_errors
    async def secret_put(
        ctx: Context,
        secret: Annotated[str, Field(description="The secret's name (env.<secret>).")],
        value: str,
        name: WorkerName = None,
    ) -> SecretResult:
        result = await run(ctx, Backend.secret_put, secret=secret, value=value, name=name)
        return cast(SecretResult, result)

    @server.tool(
        description="The Worker's versions, newest first, and which one is live.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    @reporting_errors
    async def versions(ctx: Context, name: WorkerName = None) -> VersionsResult:
        return cast(VersionsResult, await run(ctx, Backend.versions, name=name))

    @server.tool(
        description="Make an earlier version live again (default: the one before the live one)."
    )
    @reporting_errors
    async def rollback(
        ctx: Context,
        version_id: Annotated[str | None, Field(description="The version to make live.")] = None,
        name: WorkerName = None,
    ) -> RollbackResult:
        result = await run(ctx, Backend.rollback, version_id=version_id, name=name)
        return cast(RollbackResult, result)

    @server.tool(
        description="Delete the Worker (its URL stops answering; KV namespaces are kept).",
        annotations=ToolAnnotations(destructive_hint=True),
    )
    @reporting_errors
    async def delete(ctx: Context, name: WorkerName = None) -> DeleteResult:
        return cast(DeleteResult, await run(ctx, Backend.delete, name=name))

    return server


async def serve_stdio(backend: Backend) -> None:
    """`mayfly mcp`: one agent on stdin/stdout, this machine's credentials."""
    await build_server(lambda ctx: backend).run_stdio_async()
