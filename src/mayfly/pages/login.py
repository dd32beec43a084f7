"""Sign-up, log-in, log-out. Each returns to `next` (a local path), e.g. the claim page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.errors import MayflyError, RateLimited
from mayfly.pages.web import (
    Handler,
    end_session,
    field,
    form,
    in_thread,
    page,
    redirect,
    render,
    safe_next,
    services,
    start_session,
    visitor,
)
from mayfly.services.core.ratelimit import client_address
from mayfly.services.identity.users import MIN_PASSWORD, User, UserService


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


def form_page(template: str) -> Handler:
    """GET /login, /signup: the form; a visitor already logged in goes on to `next`."""

    @page
    async def show_form(request: Request) -> Response:
        who = await visitor(request)
        next_url = safe_next(request.query_params.get("next", ""))
        if who.session is not None:
            return redirect(request, next_url)
        return _form_page(request, template, next_url)

    return show_form


def entry(template: str, enter: Callable[[UserService, str, str, str], Awaitable[User]]) -> Handler:
    """POST /login, /signup: `enter(users, email, password, address)` (UserService.log_in or
    .register), then a new session and on to `next`; a refusal shows the form again, with why."""

    @page
    async def submit_form(request: Request) -> Response:
        _, data = await form(request)
        email, next_url = field(data, "email"), safe_next(field(data, "next"))
        users = services(request).users
        try:
            user = await enter(users, email, field(data, "password"), client_address(request))
        except MayflyError as exc:
            return _error_page(request, template, next_url, email, exc)
        session_id = await in_thread(request, lambda svc: svc.sessions.create(user.id))
        response = redirect(request, next_url)
        start_session(request, response, session_id)
        return response

    return submit_form


@page
async def logout(request: Request) -> Response:
    who, _ = await form(request)
    if who.session is not None:
        await in_thread(request, lambda svc: svc.sessions.end(who.session_id))
    response = redirect(request, "/login")
    end_session(request, response)
    return response


routes = [
    Route("/login", form_page("login.html"), methods=["GET"]),
    Route("/login", entry("login.html", UserService.log_in), methods=["POST"]),
    Route("/signup", form_page("signup.html"), methods=["GET"]),
    Route("/signup", entry("signup.html", UserService.register), methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
