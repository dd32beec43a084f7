"""Server-rendered pages for humans: claim, sign-up, log-in, dashboard."""

from __future__ import annotations

from starlette.routing import BaseRoute


def page_routes() -> list[BaseRoute]:
    return []
