"""Options every API command shares, and how a command gets its SDK client.

Tests hand a `ClientEnv` to click (`CliRunner.invoke(cli, args, obj=ClientEnv(transport=…))`) to
point the SDK at an in-process app through an httpx transport; nothing else is replaced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from mayfly.sdk import DEFAULT_API_URL, MayflyClient, config_dir, normalise_api_url

API_URL_ENV = "MAYFLY_API_URL"

F = TypeVar("F", bound=Callable[..., Any])


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ClientEnv:
    """What a command needs from its surroundings: the network and the clock."""

    transport: httpx.BaseTransport | None = None
    now: Callable[[], datetime] = field(default=_utcnow)

    def client(self, api_url: str) -> MayflyClient:
        return MayflyClient(api_url, transport=self.transport)

    def config_dir(self) -> Path:
        return config_dir(os.environ)


def client_env() -> ClientEnv:
    ctx = click.get_current_context()
    found = ctx.find_object(ClientEnv)
    return found if found is not None else ClientEnv()


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return normalise_api_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def api_options(func: F) -> F:
    """--api-url and --json (every command that talks to the API)."""
    func = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help='Print one JSON object on stdout (on failure: {"error": {"code", "message"}}).',
    )(func)
    func = click.option(
        "--api-url",
        envvar=API_URL_ENV,
        show_envvar=True,
        default=DEFAULT_API_URL,
        show_default=True,
        callback=_check_url,
        help="The Mayfly server (its API is under /client/v4).",
    )(func)
    return func


def token_option(func: F) -> F:
    return click.option(
        "--api-token",
        metavar="TOKEN",
        help="API token to use (default: MAYFLY_API_TOKEN, then `mayfly login`'s, "
        "then the cached temporary account). Account: MAYFLY_ACCOUNT_ID, else the token's first.",
    )(func)
