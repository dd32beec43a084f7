"""The CLI reference, generated from `--help`: `python -m mayfly.cli.docs > docs/cli.md`.

A unit test fails when docs/cli.md differs from what this prints, so the reference cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

WIDTH = 100

HEADER = """\
# `mayfly` command reference

Generated from `--help` by `python -m mayfly.cli.docs > docs/cli.md`; do not edit by hand
(a test fails when this file is out of date).

Exit codes: 0 success, 1 failure, 2 usage error. With `--json`, a command prints one JSON object
(or array) on stdout (`mayfly tail --json` prints one object per line); on failure that object is
`{"error": {"code": …, "message": …}}`, where `code` is the API's numeric error code (for example
10001: the temporary account expired; 10007: no such Worker) or, for a failure on this side, a
string: `no_credentials`, `temporary_conflict`, `usage`, `project_invalid`, `esbuild_missing`,
`bundle_failed`, `assets_upload_failed`, `namespace_not_provisioned`, `no_deployment`,
`no_rollback_target`, `tail_failed`, `api_unreachable`, `pow_unsupported`, `no_account`.
Progress and notices go to stderr.

Every command that acts on an account finds its credentials the same way: `--api-token`, else
`MAYFLY_API_TOKEN` (account: `MAYFLY_ACCOUNT_ID`, else `account_id` in the configuration, else the
token's first), else the token saved by `mayfly login`, else the cached temporary account;
`--temporary` creates a temporary account when none is cached. Commands that act on a Worker take
its name from `--name`, else from the configuration (`-c/--config`, `-e/--env`).

`.dev.vars` (dotenv syntax; `.dev.vars.<env>` with `--env`) is what wrangler reads for local
development. Mayfly has no local dev server: `mayfly deploy` uploads its entries as secrets only
with `--dev-vars` (they then replace `vars` of the same name), and otherwise says it was not
uploaded.
"""


def _contexts(command: click.Command, ctx: click.Context) -> Iterator[click.Context]:
    """A context per command, each the child of its group's (so help shows the full path)."""
    yield ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):  # imports the lazily loaded commands
            sub = command.get_command(ctx, name)
            if sub is not None:
                yield from _contexts(sub, click.Context(sub, info_name=name, parent=ctx))


def render(root: click.Command, name: str = "mayfly") -> str:
    """Every command's `--help` as a terminal WIDTH columns wide would show it."""
    settings = {**root.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    top = click.Context(root, info_name=name, **settings)
    sections = [HEADER]
    for ctx in _contexts(root, top):
        sections.append(f"## `{ctx.command_path}`\n\n```text\n{ctx.get_help()}\n```\n")
    return "\n".join(sections)


def main() -> None:
    from mayfly.cli.main import cli

    click.echo(render(cli), nl=False)


if __name__ == "__main__":
    main()
