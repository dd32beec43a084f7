"""`mayfly serve`: the control plane and the data plane on one machine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import click

from mayfly.cli.logs import configure_logging
from mayfly.settings import SETTINGS, Setting, load_settings


def _click_type(setting: Setting) -> Any:
    if setting.parse is int:
        return int
    if setting.parse is float:
        return float
    if isinstance(setting.default, bool):
        return click.BOOL
    return str


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One click option per declared setting (flag > MAYFLY_* env > default)."""
    for setting in reversed(SETTINGS):
        func = click.option(
            setting.flag,
            setting.name,
            type=_click_type(setting),
            default=None,
            help=f"{setting.help} [env {setting.env_var}; default {setting.default!r}]",
        )(func)
    return func


@click.command()
@settings_options
def serve(**flags: Any) -> None:
    """Start the platform: API and pages, the reaper, and the workerd data plane (--role)."""
    try:
        settings = load_settings(flags)
    except (ValueError, KeyError) as exc:
        raise click.UsageError(str(exc)) from exc
    configure_logging(settings.log_level, settings.log_format)
    from mayfly.app import Platform  # the composition root, imported only here
    from mayfly.services.operations.platform_key import PlatformKeyError

    try:
        platform = Platform.create(settings)
    except PlatformKeyError as exc:
        click.echo(f"Error: Mayfly cannot start: {exc}", err=True)
        raise SystemExit(2) from exc
    if settings.serves_api:
        data = settings.data_dir.absolute()
        click.echo(f"Mayfly API      {settings.public_url}  (data in {data})")
    if settings.runs_data_plane:
        click.echo(f"Workers         {settings.worker_url('<script>', '<account>')}")
    if settings.role == "dataplane":
        click.echo(f"Control plane   {settings.control_plane_url}")
    else:
        click.echo(f"Deploy with     mayfly deploy --temporary --api-url {settings.public_url}")
    try:
        asyncio.run(platform.serve())
    except KeyboardInterrupt:
        pass
