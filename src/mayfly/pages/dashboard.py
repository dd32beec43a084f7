"""The dashboard: my accounts, their Workers and KV, audit logs, and API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.errors import MayflyError, ValidationError
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
from mayfly.services.identity.users import User

EXPIRY_CHOICES = [("", "Never"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days")]


@page
async def dashboard(request: Request) -> Response:
    user = await signed_in_user(request)
    if user is None:
        return login_redirect(request)

    def load(svc: Services) -> dict[str, Any]:
        accounts = _accounts(svc, user)
        return {**accounts, "events": svc.provisioning.events.organised_by(user.email)}

    return render(request, "dashboard.html", await in_thread(request, load))


def _accounts(svc: Services, user: User) -> dict[str, Any]:
    """The user's accounts with what they hold, and their running quarantines (dashboard.html)."""
    found = svc.memberships.inventories(user.id)
    ids = [a.id for a, _ in found]
    return {
        "accounts": found,
        "quarantines": _quarantines(svc, ids),
        "account_quarantines": _account_quarantines(svc, ids),
    }


def _quarantines(svc: Services, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """account id -> script -> its running quarantine (for _inventory.html)."""
    running = svc.quarantine.active_in(account_ids)
    now = svc.ctx.clock.now()
    out: dict[str, dict[str, Any]] = {}
    for q in running:
        out.setdefault(q.account_id, {})[q.script] = q.to_json(now)
    return out


def _account_quarantines(svc: Services, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """account id -> the whole account's running quarantine (for _account_quarantine.html)."""
    now = svc.ctx.clock.now()
    return {
        account_id: q.to_json(now)
        for account_id, q in svc.quarantine.active_accounts_in(account_ids).items()
    }


@page
async def create_account(request: Request) -> Response:
    who, data = await form(request)
    if who.session is None:
        return redirect(request, "/login?next=/dashboard")
    user, name = who.session.user, field(data, "name")
    try:
        account = await in_thread(request, lambda svc: svc.memberships.create_account(user, name))
    except MayflyError as exc:
        accounts = await in_thread(request, lambda svc: _accounts(svc, user))
        context = {**accounts, "error": exc.message, "name": name}
        return render(request, "dashboard.html", context, status=exc.status)
    return redirect(request, f"/dashboard/accounts/{account.id}")


async def _account_page(
    request: Request, user: User, account_id: str, status: int = 200, **extra: Any
) -> Response:
    def load(svc: Services) -> dict[str, Any]:
        view = svc.memberships.view(user.id, account_id)
        tokens = svc.user_tokens.tokens_of(user.id, account_id)
        quarantines = _quarantines(svc, [view.account.id])
        return {
            "view": view,
            "quarantined": quarantines.get(view.account.id, {}),
            "account_quarantine": _account_quarantines(svc, [view.account.id]).get(view.account.id),
            "tokens": tokens,
        }

    context = {
        **await in_thread(request, load),
        "expiry_choices": EXPIRY_CHOICES,
        "claimed": request.query_params.get("claimed") == "1",
        "merged": request.query_params.get("merged") == "1",
        **extra,
    }
    return render(request, "account.html", context, status=status)


@page
async def account_page(request: Request) -> Response:
    user = await signed_in_user(request)
    if user is None:
        return login_redirect(request)
    return await _account_page(request, user, request.path_params["account_id"])


@page
async def create_token(request: Request) -> Response:
    who, data = await form(request)
    account_id = request.path_params["account_id"]
    if who.session is None:
        return redirect(request, f"/login?next=/dashboard/accounts/{account_id}")
    user = who.session.user
    days = field(data, "expires")
    try:
        if days and days not in {d for d, _ in EXPIRY_CHOICES}:
            raise ValidationError("Choose one of the offered expiries.")
        expires = services(request).ctx.clock.now() + timedelta(days=int(days)) if days else None
        info, value = await in_thread(
            request,
            lambda svc: svc.user_tokens.create(user, account_id, field(data, "name"), expires),
        )
    except MayflyError as exc:
        return await _account_page(
            request, user, account_id, exc.status, token_error=exc.message, name=field(data, "name")
        )
    return await _account_page(request, user, account_id, created=info, created_value=value)


@page
async def revoke_token(request: Request) -> Response:
    who, _ = await form(request)
    if who.session is None:
        return redirect(request, "/login?next=/dashboard")
    user, token_id = who.session.user, request.path_params["token_id"]
    info = await in_thread(request, lambda svc: svc.user_tokens.revoke(user, token_id))
    return redirect(request, f"/dashboard/accounts/{info.account_id}#tokens")


routes = [
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/dashboard/accounts", create_account, methods=["POST"]),
    Route("/dashboard/accounts/{account_id}", account_page, methods=["GET"]),
    Route("/dashboard/accounts/{account_id}/tokens", create_token, methods=["POST"]),
    Route("/dashboard/tokens/{token_id}/revoke", revoke_token, methods=["POST"]),
]
