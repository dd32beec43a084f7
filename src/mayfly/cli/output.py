"""What a command prints: pretty text on a terminal, or one JSON object with `--json`.

Results go to stdout; progress, notices and warnings to stderr, so that `--json` output stays one
parseable object. Failures are `{"error": {"code", "message"}}` on stdout with `--json`, an
`Error: …` line on stderr otherwise; the exit code is 1 (failure) or 2 (usage).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from mayfly.project.errors import ProjectError
from mayfly.sdk.errors import SDKError

if TYPE_CHECKING:
    from mayfly.sdk.models import TemporaryAccount

EXIT_FAILURE = 1
EXIT_USAGE = 2
# Client-side error codes that are the caller's mistake rather than a failure.
USAGE_CODES = frozenset({"temporary_conflict", "usage"})


class CommandFailed(Exception):
    """A failure a command reports itself: a stable code, an actionable message."""

    def __init__(
        self,
        code: int | str,
        message: str,
        exit_code: int = EXIT_FAILURE,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code
        self.details = details or {}


class Output:
    """Renders one command's results, progress and errors. Also an SDK Listener."""

    def __init__(self, as_json: bool, now: Callable[[], datetime] | None = None) -> None:
        self.as_json = as_json
        self.now: Callable[[], datetime] = now or _utcnow
        self.interactive = sys.stderr.isatty()
        self._task: str | None = None
        self._task_started = 0.0
        self._last_progress = 0.0

    # -- results ---------------------------------------------------------------------------------

    def result(self, data: Any, lines: Iterable[str]) -> None:
        """`data` (an object or an array) as JSON, or the pretty `lines` on a terminal."""
        if self.as_json:
            click.echo(json.dumps(data, indent=None, sort_keys=False))
        else:
            for line in lines:
                click.echo(line)

    def fail(self, failure: CommandFailed) -> NoReturn:
        """Its `details` go into the JSON error object next to code and message."""
        self._close_line()
        if self.as_json:
            error = {"code": failure.code, "message": failure.message, **failure.details}
            click.echo(json.dumps({"error": error}))
        else:
            prefix = click.style("Error:", fg="red", bold=True)
            click.echo(f"{prefix} {failure.message}", err=True)
        raise click.exceptions.Exit(failure.exit_code)

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn the errors a command can meet into the documented output and exit code."""
        try:
            yield
        except CommandFailed as exc:
            self.fail(exc)
        except ProjectError as exc:
            for diagnostic in exc.diagnostics:
                if diagnostic.severity == "warning":
                    self.warn(diagnostic.message)
            self.fail(CommandFailed(exc.code, exc.message))
        except SDKError as exc:
            exit_code = EXIT_USAGE if exc.code in USAGE_CODES else EXIT_FAILURE
            self.fail(CommandFailed(exc.code, exc.message, exit_code, exc.details))

    # -- stderr ----------------------------------------------------------------------------------

    def notice(self, message: str) -> None:
        self._close_line()
        click.echo(message, err=True)

    def warn(self, message: str) -> None:
        self._close_line()
        click.echo(f"{click.style('Warning:', fg='yellow', bold=True)} {message}", err=True)

    def begin(self, task: str, total: int = 0) -> None:
        self._close_line()
        self._task = task
        self._task_started = self._last_progress = time.monotonic()
        click.echo(f"{task}…", err=True, nl=False)

    def advance(self, done: int, total: int) -> None:
        if self._task is None or total <= 0:
            return
        now = time.monotonic()
        percent = 100 * done // total
        if self.interactive:
            if now - self._last_progress >= 0.1:
                self._last_progress = now
                click.echo(f"\r{self._task}… {percent}%", err=True, nl=False)
        elif now - self._last_progress >= 1.0:
            # A pipe gets a percentage about once a second, on the same line.
            self._last_progress = now
            click.echo(f" {percent}%…", err=True, nl=False)

    def end(self, task: str, seconds: float) -> None:
        if self._task != task:
            self._close_line()
            click.echo(f"{task}…", err=True, nl=False)
        head = f"\r{task}…" if self.interactive else ""
        click.echo(f"{head} done ({format_seconds(seconds)})", err=True)
        self._task = None

    def temporary_account(self, account: TemporaryAccount, created: bool) -> None:
        state = "created" if created else "reused"
        left = format_duration(account.seconds_left(self.now()))
        self.notice(f"Temporary account {account.name} ({state}) — claim within {left}")

    def _close_line(self) -> None:
        if self._task is not None:
            click.echo("", err=True)
            self._task = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def format_duration(seconds: float) -> str:
    """A time left, rounded the way a person says it: 59 minutes, 2 hours 5 minutes, 40 seconds."""
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours" + (f" {minutes} minutes" if minutes else "")


def table(rows: Iterable[tuple[str, str]], indent: str = "  ") -> list[str]:
    """Aligned `label  value` lines."""
    items = [(label, value) for label, value in rows]
    width = max((len(label) for label, _ in items), default=0)
    return [
        f"{indent}{click.style(label.ljust(width), bold=True)}  {value}" for label, value in items
    ]
