"""The claim page: what a temporary account holds, and keeping it or moving it into my account."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.errors import MayflyError, Quarantined
from mayfly.model import Account
from mayfly.pages.web import (
    field,
    form,
    in_thread,
    login_redirect,
    page,
    redirect,
    render,
    services,
    signed_in_user,
)
from mayfly.services.container import Services
from mayfly.services.identity.users import MIN_PASSWORD
from mayfly.services.temporary.claims import (
    AlreadyClaimed,
    ClaimLinkExpired,
    ClaimLinkUnknown,
    ClaimView,
    ExtensionRefused,
    MoveConflicts,
)
from mayfly.services.temporary.transfers import MovePlan

CLAIM_ERRORS: dict[type[MayflyError], str] = {
    ClaimLinkUnknown: "Claim link not found",
    ClaimLinkExpired: "This temporary account has expired",
    AlreadyClaimed: "Already claimed",
}


def _token(request: Request) -> str:
    return str(request.path_params["token"])


def claim_error(request: Request, exc: MayflyError) -> Response:
    return render(
        request,
        "claim_error.html",
        {
            "title": CLAIM_ERRORS.get(type(exc), "Cannot claim"),
            "message": exc.message,
            "status_code": exc.status,
        },
        status=exc.status,
    )


@page
async def claim_page(request: Request) -> Response:
    return await _claim_page(request)


async def _claim_page(request: Request, status: int = 200, error: str = "") -> Response:
    user = await signed_in_user(request)
    token = _token(request)

    def load(svc: Services) -> tuple[ClaimView, list[Account]]:
        view = svc.claims.inspect(token)
        owned = svc.memberships.accounts_of(user.id) if user is not None else []
        return view, [a for a in owned if a.kind == "permanent"]

    try:
        view, targets = await in_thread(request, load)
    except (ClaimLinkUnknown, ClaimLinkExpired, AlreadyClaimed) as exc:
        return claim_error(request, exc)
    return render(
        request,
        "claim.html",
        {
            "token": _token(request),
            "view": view,
            "targets": targets,
            "next": request.url.path,
            "min_password": MIN_PASSWORD,
            "extended": request.query_params.get("extended") == "1",
            "error": error,
        },
        status=status,
    )


def _renames(data: FormData | None, prefix: str) -> dict[str, str]:
    if data is None:
        return {}
    return {
        k[len(prefix) :]: v
        for k, v in data.multi_items()
        if k.startswith(prefix) and isinstance(v, str)
    }


def _move_page(request: Request, plan: MovePlan, status: int = 200, error: str = "") -> Response:
    context: dict[str, Any] = {"token": _token(request), "plan": plan, "error": error}
    return render(request, "claim_move.html", context, status=status)


@page
async def move_preview(request: Request) -> Response:
    user = await signed_in_user(request)
    if user is None:
        return login_redirect(request)
    token, into = _token(request), request.query_params.get("into", "")
    try:
        plan = await in_thread(request, lambda svc: svc.claims.plan_move(token, user.id, into))
    except (ClaimLinkUnknown, ClaimLinkExpired, AlreadyClaimed) as exc:
        return claim_error(request, exc)
    return _move_page(request, plan)


@page
async def claim(request: Request) -> Response:
    who, data = await form(request)
    if who.session is None:
        return redirect(request, f"/login?next=/claim/{_token(request)}")
    user = who.session.user
    claims = services(request).claims
    action = field(data, "action")
    renames, titles = _renames(data, "rename:"), _renames(data, "title:")
    try:
        if action == "extend":
            await claims.extend(_token(request), user)
            return redirect(request, f"/claim/{_token(request)}?extended=1")
        if action == "keep":
            kept = await claims.keep(_token(request), user)
            return redirect(request, f"/dashboard/accounts/{kept.account.id}?claimed=1")
        into = field(data, "into")
        if action == "preview":
            plan = await in_thread(
                request,
                lambda svc: svc.claims.plan_move(_token(request), user.id, into, renames, titles),
            )
            return _move_page(request, plan)
        if action == "move":
            moved = await claims.move(_token(request), user, into, renames, titles)
            return redirect(request, f"/dashboard/accounts/{moved.account.id}?merged=1")
    except MoveConflicts as exc:
        return _move_page(request, exc.plan, 409, exc.message)
    except (ExtensionRefused, Quarantined) as exc:
        return await _claim_page(request, exc.status, exc.message)
    except (ClaimLinkUnknown, ClaimLinkExpired, AlreadyClaimed) as exc:
        return claim_error(request, exc)
    return redirect(request, f"/claim/{_token(request)}")


routes = [
    Route("/claim/{token}", claim_page, methods=["GET"]),
    Route("/claim/{token}", claim, methods=["POST"]),
    Route("/claim/{token}/move", move_preview, methods=["GET"]),
]
