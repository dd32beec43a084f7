"""Server-rendered pages for humans: claim, sign-up, log-in, dashboard, device approval."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles


def page_routes() -> list[BaseRoute]:
    from mayfly.pages import claim, dashboard, device, events, login

    return [
        *login.routes,
        *claim.routes,
        *dashboard.routes,
        *events.routes,
        *device.routes,
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
