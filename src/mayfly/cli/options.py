"""Options every API command shares, how a command gets its SDK client, and how it runs an action
in the account its credentials reach (`run_in_account`).

Tests hand a `ClientEnv` to click (`CliRunner.invoke(cli, args, obj=ClientEnv(transport=…))`) to
point the SDK at an in-process app through an httpx transport (and the tail at a WebSocket of
their choosing); nothing else is replaced.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mayfly.cli.output import EXIT_USAGE, CommandFailed, Output
from mayfly.sdk.client import DEFAULT_API_URL, MayflyClient, normalise_api_url
from mayfly.sdk.credentials import TemporaryAccountCache, config_dir, resolve_credentials
from mayfly.sdk.session import TEMPORARY_CONFLICT, AccountSession, Ran

if TYPE_CHECKING:
    import httpx

    from mayfly.project import Project
    from mayfly.sdk.models import AccountInfo
    from mayfly.sdk.tail import TailConnection

API_URL_ENV = "MAYFLY_API_URL"

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def open_websocket(url: str) -> TailConnection:
    from mayfly.sdk.tail import open_websocket  # websockets: imported by the commands that tail

    return open_websocket(url)


@dataclass
class ClientEnv:
    """What a command needs from its surroundings: the network and the clock."""

    transport: httpx.BaseTransport | None = None
    now: Callable[[], datetime] = field(default=_utcnow)
    open_websocket: Callable[[str], TailConnection] = field(default=open_websocket)

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


def api_url_option(func: F) -> F:
    return click.option(
        "--api-url",
        envvar=API_URL_ENV,
        show_envvar=True,
        default=DEFAULT_API_URL,
        show_default=True,
        callback=_check_url,
        help="The Mayfly server (its API is under /client/v4).",
    )(func)


def api_options(func: F) -> F:
    """--api-url and --json (every command that talks to the API)."""
    return api_url_option(
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help='Print one JSON object on stdout (on failure: {"error": {"code", "message"}}).',
        )(func)
    )


def token_option(func: F) -> F:
    return click.option(
        "--api-token",
        metavar="TOKEN",
        help="API token to use (default: MAYFLY_API_TOKEN, then `mayfly login`'s, "
        "then the cached temporary account). Account: MAYFLY_ACCOUNT_ID, else the token's first.",
    )(func)


def temporary_option(func: F) -> F:
    return click.option(
        "--temporary",
        is_flag=True,
        help="Use the cached temporary account, or create one (a proof of work, no sign-up) if "
        "there is none. Without it, a cached temporary account is still used when no other "
        "credentials are set.",
    )(func)


@dataclass(frozen=True)
class ApiArgs:
    """--temporary, --api-token, --api-url and --json: which account a command acts in, and how it
    prints (`account_options` hands them to the command as `api`)."""

    temporary: bool
    api_token: str | None
    api_url: str
    as_json: bool

    def output(self) -> Output:
        return command_output(self.as_json)

    def run(
        self,
        out: Output,
        action: Callable[[MayflyClient, AccountInfo], T],
        *,
        account_id: str | None = None,
    ) -> Ran[T]:
        """`run_in_account` with these credentials."""
        return run_in_account(
            out, self.api_url, self.api_token, self.temporary, action, account_id=account_id
        )


def account_options(func: Callable[..., None]) -> Callable[..., None]:
    """--temporary, --api-token, --api-url and --json, passed to the command as `api: ApiArgs`."""

    @functools.wraps(func)
    def command(
        *args: Any, temporary: bool, api_token: str | None, api_url: str, as_json: bool, **kw: Any
    ) -> None:
        func(*args, api=ApiArgs(temporary, api_token, api_url, as_json), **kw)

    return temporary_option(token_option(api_options(command)))


def worker_options(func: F) -> F:
    """--name, --config and --env: which Worker a command acts on."""
    func = click.option(
        "-e",
        "--env",
        "env_name",
        metavar="NAME",
        help="Use the configuration's [env.NAME] section (the Worker is then named "
        "<name>-NAME unless the section sets a name).",
    )(func)
    func = click.option(
        "-c",
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Configuration file (default: the nearest wrangler.json, wrangler.jsonc or "
        "wrangler.toml in this directory or a parent).",
    )(func)
    func = click.option(
        "--name", help="The Worker's name (default: `name` from the configuration)."
    )(func)
    return func


@dataclass(frozen=True)
class Target:
    """The Worker a command acts on, and the project it was read from (if any)."""

    name: str
    project: Project | None

    @property
    def account_id(self) -> str | None:
        return self.project.account_id if self.project else None


@dataclass(frozen=True)
class WorkerArgs:
    """--name, --config and --env (`worker_account_options` hands them to the command as
    `worker`)."""

    name: str | None
    config: Path | None
    env_name: str | None

    def load(self, out: Output) -> Target:
        """The Worker, and its project (whose warnings are printed) if it was read from one."""
        target = load_target(self.name, self.config, self.env_name)
        project_warnings(out, target.project)
        return target


def worker_account_options(func: Callable[..., None]) -> Callable[..., None]:
    """`worker_options` and `account_options`: the command gets `worker` and `api`."""

    @functools.wraps(func)
    def command(
        *args: Any, name: str | None, config: Path | None, env_name: str | None, **kw: Any
    ) -> None:
        func(*args, worker=WorkerArgs(name, config, env_name), **kw)

    return worker_options(account_options(command))


def load_target(
    name: str | None, config: Path | None, env_name: str | None, *, need_config: bool = False
) -> Target:
    """`--name` alone needs no configuration; otherwise the project's (with --env) is read."""
    wants_config = need_config or name is None or config is not None or env_name is not None
    if not wants_config:
        return Target(name or "", None)
    from mayfly.project import CONFIG_FILES, find_config, load_project

    cwd = Path.cwd()
    if config is None and find_config(cwd) is None:
        if name is not None and not need_config:
            return Target(name, None)
        raise CommandFailed(
            "usage",
            f"No {', '.join(CONFIG_FILES)} in {cwd} or its parents: pass --name (the Worker's "
            "name), or run this in the project's directory.",
            EXIT_USAGE,
        )
    project = load_project(cwd, config=config, name=name, env=env_name, require_main=False)
    return Target(project.name, project)


def check_temporary(resolution_source: str | None, temporary: bool) -> None:
    """`--temporary` with other credentials is a usage error (exit 2)."""
    if temporary and resolution_source is not None and resolution_source != "temporary":
        raise CommandFailed(
            "temporary_conflict", TEMPORARY_CONFLICT.format(source=resolution_source), EXIT_USAGE
        )


def run_in_account(
    out: Output,
    api_url: str,
    api_token: str | None,
    temporary: bool,
    action: Callable[[MayflyClient, AccountInfo], T],
    *,
    account_id: str | None = None,
) -> Ran[T]:
    """Resolve the credentials (DESIGN §6), then run `action` in their account."""
    env = client_env()
    resolution = resolve_credentials(
        api_url, now=env.now(), flag_token=api_token, directory=env.config_dir()
    )
    credentials = resolution.credentials
    check_temporary(credentials.source if credentials else None, temporary)
    with env.client(api_url) as client:
        session = AccountSession(client, TemporaryAccountCache(env.config_dir()), out, env.now)
        return session.run(resolution, action, temporary=temporary, account_id=account_id)


def project_warnings(out: Output, project: Project | None) -> None:
    if project is not None:
        for warning in project.warnings:
            out.warn(warning)


def command_output(as_json: bool) -> Output:
    """The command's Output, on the ClientEnv's clock."""
    return Output(as_json, client_env().now)
