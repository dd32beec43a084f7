"""`/device`: a logged-in human approves (or denies) a `mayfly login` waiting in a terminal."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.errors import MayflyError
from mayfly.pages.web import field, form, login_redirect, page, redirect, render, services, visitor


@page
async def device_page(request: Request) -> Response:
    who = await visitor(request)
    if who.session is None:
        return login_redirect(request)
    user = who.session.user
    code = request.query_params.get("user_code", "").strip()
    if not code:
        return render(request, "device.html", {})
    svc = services(request)
    try:
        pending = await asyncio.to_thread(svc.device_auth.pending, user, code)
    except MayflyError as exc:
        return render(
            request, "device.html", {"error": exc.message, "code": code}, status=exc.status
        )
    owned = await asyncio.to_thread(svc.memberships.accounts_of, user.id)
    return render(
        request,
        "device_confirm.html",
        {"pending": pending, "accounts": [a for a in owned if a.kind == "permanent"]},
    )


@page
async def device_decide(request: Request) -> Response:
    who, data = await form(request)
    code = field(data, "user_code")
    if who.session is None:
        return redirect(request, "/login?next=/device")
    approve = field(data, "decision") == "approve"
    try:
        await asyncio.to_thread(
            services(request).device_auth.decide,
            who.session.user,
            code,
            approve,
            field(data, "account_id"),
        )
    except MayflyError as exc:
        return render(
            request, "device.html", {"error": exc.message, "code": code}, status=exc.status
        )
    return render(request, "device_done.html", {"approved": approve})


routes = [
    Route("/device", device_page, methods=["GET"]),
    Route("/device", device_decide, methods=["POST"]),
]
