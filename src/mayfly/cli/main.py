"""Entry point: `mayfly <command>`. Exit codes: 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import click

from mayfly import __version__
from mayfly.cli.admin import admin
from mayfly.cli.deploy import deploy
from mayfly.cli.login import login, logout
from mayfly.cli.serve import serve
from mayfly.cli.whoami import whoami


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mayfly")
def cli() -> None:
    """Mayfly: deploy Cloudflare-style Workers with one command; no account needed."""


cli.add_command(serve)
cli.add_command(deploy)
cli.add_command(whoami)
cli.add_command(login)
cli.add_command(logout)
cli.add_command(admin)


def main() -> None:
    cli()
