"""Entry point: `mayfly <command>`. Exit codes: 0 ok, 1 failure, 2 usage.

Each command is imported only when it runs (cli/lazy.py), so that an agent's `mayfly deploy` or
`mayfly whoami` pays for what it uses: no server module, no other command's dependencies.
"""

from __future__ import annotations

import sys

import click

from mayfly import __version__
from mayfly.cli.lazy import LazyCommand, LazyGroup

COMMANDS = {
    "admin": LazyCommand(
        "mayfly.cli.admin:admin",
        "Operator commands (run on the server, against its data dir or database).",
    ),
    "delete": LazyCommand(
        "mayfly.cli.delete:delete", "Delete the Worker: its URL stops answering (404) at once."
    ),
    "deploy": LazyCommand("mayfly.cli.deploy:deploy", "Deploy the Worker in this directory."),
    "deployments": LazyCommand(
        "mayfly.cli.deployments:deployments", "A Worker's deployments: each made one version live."
    ),
    "d1": LazyCommand("mayfly.cli.d1:d1", "D1 databases: SQL, migrations."),
    "kv": LazyCommand("mayfly.cli.kv:kv", "Workers KV: namespaces and the values in them."),
    "login": LazyCommand(
        "mayfly.cli.login:login",
        "Log in as a person: approve this CLI in a browser (any machine), get an API token.",
    ),
    "logout": LazyCommand(
        "mayfly.cli.login:logout",
        "Revoke the token saved by `mayfly login` for this API URL, and forget it.",
    ),
    "mcp": LazyCommand(
        "mayfly.cli.mcp:mcp",
        "Serve Mayfly's tools to an agent over MCP (Model Context Protocol) on stdin/stdout.",
    ),
    "r2": LazyCommand(
        "mayfly.cli.r2:r2", "R2 buckets (objects: through a binding, or `wrangler r2 object`)."
    ),
    "rollback": LazyCommand(
        "mayfly.cli.deployments:rollback",
        "Make an earlier version live again (a new deployment of it).",
    ),
    "secret": LazyCommand(
        "mayfly.cli.secret:secret",
        "A Worker's secrets: encrypted at rest, visible to the Worker as env.NAME.",
    ),
    "serve": LazyCommand(
        "mayfly.cli.serve:serve",
        "Start the platform: API and pages, the reaper, and the workerd data plane (--role).",
    ),
    "tail": LazyCommand(
        "mayfly.cli.tail:tail",
        "Stream the Worker's live logs: each request's console output, exceptions and outcome.",
    ),
    "versions": LazyCommand(
        "mayfly.cli.versions:versions",
        "A Worker's versions: every upload, secret change and draft is one.",
    ),
    "whoami": LazyCommand(
        "mayfly.cli.whoami:whoami",
        "Show which credentials are in use and the account they reach.",
    ),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mayfly")
def cli() -> None:
    """Mayfly: deploy Cloudflare-style Workers with one command; no account needed."""


def main() -> None:
    # httpx imports its optional command-line client (rich, pygments: ~60 ms) whenever those are
    # installed, as they are in a development environment; `mayfly` never runs it. Without them
    # (a plain install) httpx skips it the same way.
    if "httpx" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]  # ImportError: skipped
    cli()
