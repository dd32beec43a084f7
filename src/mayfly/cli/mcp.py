"""`mayfly mcp`: an MCP server on stdin/stdout for agents (the tools are in mayfly.mcp)."""

from __future__ import annotations

import click

from mayfly.cli.options import api_url_option, client_env


@click.command()
@api_url_option
@click.option(
    "--api-token",
    metavar="TOKEN",
    help="API token to use (default: MAYFLY_API_TOKEN, then `mayfly login`'s, then the cached "
    "temporary account, else `deploy` creates one).",
)
def mcp(api_url: str, api_token: str | None) -> None:
    """Serve Mayfly's tools to an agent over MCP (Model Context Protocol) on stdin/stdout.

    Register it with an agent as a stdio server whose command is `mayfly mcp` (see the README).
    Tools: deploy (a project `path` or inline `files`), status, logs, kv_get, kv_put, kv_list,
    secret_put, versions, rollback, delete. Credentials are the CLI's: a token, a login, or the
    cached temporary account; `deploy` creates a temporary account when there is none (its
    proof of work is reported as progress). Failures are tool errors with Mayfly's error code.
    """
    import anyio

    from mayfly.mcp.backend import Backend
    from mayfly.mcp.server import serve_stdio

    env = client_env()
    backend = Backend(
        api_url,
        token=api_token,
        directory=env.config_dir(),
        transport=env.transport,
        clock=env.now,
        open_websocket=env.open_websocket,
    )
    anyio.run(serve_stdio, backend)
