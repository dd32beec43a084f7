"""A click group whose commands are imported when they run, not when `mayfly` starts.

`mayfly whoami` then imports what whoami needs and nothing else (never the server: `mayfly serve`
and `mayfly admin` are the only commands that import it). The group's own `--help` lists every
command by the summary given here (the first paragraph of its help), so it imports none of them;
tests/unit/test_cli_imports.py checks that each summary is still the command's own.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click


class LazyCommand:
    """Where a command is (`module:attribute`) and the first paragraph of its help. (A plain class:
    `mayfly --help` need not import dataclasses.)"""

    __slots__ = ("path", "summary")

    def __init__(self, path: str, summary: str) -> None:
        self.path = path
        self.summary = summary

    def load(self) -> click.Command:
        module_name, _, attribute = self.path.partition(":")
        __import__(module_name)  # the import statement's machinery: -X importtime sees it
        command = getattr(sys.modules[module_name], attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.path} is not a click command")
        return command


class LazyGroup(click.Group):
    """A group whose `lazy` commands are imported on first use (click's documented pattern)."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # "Did you mean …?" among all commands
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def summary_command(self, name: str) -> click.Command:
        """The command if it is loaded, else a stand-in carrying its summary (for --help)."""
        loaded = self.commands.get(name)
        return loaded if loaded is not None else click.Command(name, help=self.lazy[name].summary)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click.Group.format_commands, with summaries in place of commands not yet imported."""
        commands = [
            (name, command)
            for name in self.list_commands(ctx)
            if not (command := self.summary_command(name)).hidden
        ]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
