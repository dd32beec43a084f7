"""`/device`: a logged-in human approves (or denies) a `mayfly login` waiting in a terminal."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.errors import MayflyError
from mayfly.pages.web import field, form, in_thread, login_redirect, page, redirect, render, visitor


@page
async def device_page(request: Request) -> Response:
    who = await visitor(request)
    if who.session is None:
        return login_redirect(request)
    user = who.session.user
    code = request.query_params.get("user_code", "").strip()
    if not code:
        return render(request, "device.html", {})
    try:
        pending = await in_thread(request, lambda svc: svc.device_auth.pending(user, code))
    except MayflyError as exc:
        return render(
            request, "device.html", {"error": exc.message, "code": code}, status=exc.status
        )
    owned = await in_thread(request, lambda svc: svc.memberships.accounts_of(user.id))
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
    user = who.session.user
    approve, account_id = field(data, "decision") == "approve", field(data, "account_id")
    try:
        await in_thread(
            request, lambda svc: svc.device_auth.decide(user, code, approve, account_id)
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
