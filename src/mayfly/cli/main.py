"""Entry point: `mayfly <command>`. Exit codes: 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import click

from mayfly import __version__
from mayfly.cli.admin import admin
from mayfly.cli.delete import delete
from mayfly.cli.deploy import deploy
from mayfly.cli.deployments import deployments, rollback
from mayfly.cli.kv import kv
from mayfly.cli.login import login, logout
from mayfly.cli.mcp import mcp
from mayfly.cli.secret import secret
from mayfly.cli.serve import serve
from mayfly.cli.tail import tail
from mayfly.cli.versions import versions
from mayfly.cli.whoami import whoami


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mayfly")
def cli() -> None:
    """Mayfly: deploy Cloudflare-style Workers with one command; no account needed."""


for command in (
    serve,
    deploy,
    whoami,
    login,
    logout,
    tail,
    secret,
    kv,
    versions,
    deployments,
    rollback,
    delete,
    mcp,
    admin,
):
    cli.add_command(command)


def main() -> None:
    cli()
