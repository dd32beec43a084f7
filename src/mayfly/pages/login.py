"""Sign-up, log-in, log-out. Each returns to `next` (a local path), e.g. the claim page."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.errors import MayflyError, RateLimited
from mayfly.pages.web import (
    end_session,
    field,
    form,
    page,
    redirect,
    render,
    safe_next,
    services,
    start_session,
    visitor,
)
from mayfly.services.core.ratelimit import client_address
from mayfly.services.identity.users import MIN_PASSWORD


def _form_page(
    request: Request,
    template: str,
    next_url: str,
    email: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        template,
        {"next": next_url, "email": email, "error": error, "min_password": MIN_PASSWORD},
        status=status,
    )


def _error_page(
    request: Request, template: str, next_url: str, email: str, exc: MayflyError
) -> Response:
    response = _form_page(request, template, next_url, email, exc.message, exc.status)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@page
async def login_page(request: Request) -> Response:
    who = await visitor(request)
    next_url = safe_next(request.query_params.get("next", ""))
    if who.session is not None:
        return redirect(request, next_url)
    return _form_page(request, "login.html", next_url)


@page
async def login(request: Request) -> Response:
    _, data = await form(request)
    email, next_url = field(data, "email"), safe_next(field(data, "next"))
    svc = services(request)
    try:
        user = await svc.users.log_in(email, field(data, "password"), client_address(request))
    except MayflyError as exc:
        return _error_page(request, "login.html", next_url, email, exc)
    session_id = await asyncio.to_thread(svc.sessions.create, user.id)
    response = redirect(request, next_url)
    start_session(request, response, session_id)
    return response


@page
async def signup_page(request: Request) -> Response:
    who = await visitor(request)
    next_url = safe_next(request.query_params.get("next", ""))
    if who.session is not None:
        return redirect(request, next_url)
    return _form_page(request, "signup.html", next_url)


@page
async def signup(request: Request) -> Response:
    _, data = await form(request)
    email, next_url = field(data, "email"), safe_next(field(data, "next"))
    svc = services(request)
    try:
        user = await svc.users.register(email, field(data, "password"), client_address(request))
    except MayflyError as exc:
        return _error_page(request, "signup.html", next_url, email, exc)
    session_id = await asyncio.to_thread(svc.sessions.create, user.id)
    response = redirect(request, next_url)
    start_session(request, response, session_id)
    return response


@page
async def logout(request: Request) -> Response:
    who, _ = await form(request)
    if who.session is not None:
        await asyncio.to_thread(services(request).sessions.end, who.session_id)
    response = redirect(request, "/login")
    end_session(request, response)
    return response


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/signup", signup_page, methods=["GET"]),
    Route("/signup", signup, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
