"""What every page shares: templates, the visitor (session cookie), CSRF, headers, error pages.

Sessions are server-side (services/identity/sessions.py); the cookie holds a random id, HttpOnly,
SameSite=Lax, and Secure with the `__Host-` prefix when the public URL is https. CSRF tokens are
an HMAC of the session id (or, before log-in, of a random pre-session cookie), so a form is valid
only for the browser it was rendered for; state-changing POSTs also check Origin when sent.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mayfly.errors import MayflyError
from mayfly.model import as_utc
from mayfly.services.container import Services, services_of
from mayfly.services.identity.sessions import Session
from mayfly.services.identity.users import User

log = logging.getLogger("mayfly.pages")
HERE = Path(__file__).parent
SESSION_COOKIE = "mayfly_session"
CSRF_COOKIE = "mayfly_csrf"
CSRF_FIELD = "csrf_token"

T = TypeVar("T")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    # Claim URLs carry the claim token: never send them to the Worker URLs a page links to.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _iso(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _left(value: datetime, now: datetime) -> str:
    seconds = max(0, int((as_utc(value) - now).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _detail(value: Any) -> str:
    """An audit detail value, readably: mappings as `a → b`, lists comma-separated."""
    if isinstance(value, dict):
        return ", ".join(f"{k} → {v}" if k != v else str(k) for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["when"] = _when
templates.filters["iso"] = _iso
templates.filters["left"] = _left
templates.filters["detail"] = _detail


services = services_of  # the Services this request's app was built with


async def in_thread(request: Request, work: Callable[[Services], T]) -> T:
    """`work(services)` in a worker thread: a page's blocking calls, together in one thread (the
    one place pages hand work to a thread)."""
    return await asyncio.to_thread(work, services(request))


def _secure(request: Request) -> bool:
    return services(request).ctx.settings.public_url.startswith("https://")


def cookie_name(request: Request, base: str) -> str:
    return f"__Host-{base}" if _secure(request) else base


@dataclass
class Visitor:
    """Who is looking: a logged-in session, or an anonymous browser with a CSRF cookie."""

    session_id: str
    session: Session | None
    anon_id: str
    new_anon: bool

    @property
    def binding(self) -> str:
        return ("s:" + self.session_id) if self.session else ("a:" + self.anon_id)


async def signed_in_user(request: Request) -> User | None:
    """The signed-in person, or None (a visitor without a session)."""
    who = await visitor(request)
    return who.session.user if who.session else None


async def visitor(request: Request) -> Visitor:
    cached: Visitor | None = getattr(request.state, "visitor", None)
    if cached is not None:
        return cached
    session_id = request.cookies.get(cookie_name(request, SESSION_COOKIE), "")
    session = (
        await in_thread(request, lambda svc: svc.sessions.lookup(session_id))
        if session_id
        else None
    )
    anon = request.cookies.get(cookie_name(request, CSRF_COOKIE), "")
    found = Visitor(session_id, session, anon or secrets.token_urlsafe(32), not anon)
    request.state.visitor = found
    return found


def csrf_token(request: Request, who: Visitor) -> str:
    return services(request).ctx.crypto.sign(b"csrf:" + who.binding.encode())


class CSRFRejected(MayflyError):
    code, status = 9109, 403


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Older browsers and non-browser clients send none; under `Referrer-Policy: no-referrer`
        # browsers send "null". The token still has to match.
        return True
    allowed = {
        f"{request.url.scheme}://{request.headers.get('host', '')}",
        _origin(services(request).ctx.settings.public_url),
    }
    return origin in allowed


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def form(request: Request) -> tuple[Visitor, FormData]:
    """The posted form, after the CSRF check (CSRFRejected on failure)."""
    who = await visitor(request)
    data = await request.form(max_files=0, max_fields=200, max_part_size=64 * 1024)
    given = data.get(CSRF_FIELD)
    expected = csrf_token(request, who)
    if (
        not isinstance(given, str)
        or not hmac.compare_digest(given, expected)
        or not _same_origin(request)
    ):
        raise CSRFRejected(
            "This form expired or was sent from another site, so nothing was changed. "
            "Go back, reload the page and try again."
        )
    return who, data


def field(data: FormData, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def safe_next(target: str, default: str = "/dashboard") -> str:
    """Only local paths: never an open redirect (`//evil`, `/\\evil`, `https://…`)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return default


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    who: Visitor = request.state.visitor
    ctx = services(request).ctx
    body = templates.get_template(template).render(
        {
            "user": who.session.user if who.session else None,
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(request, who),
            "now": ctx.clock.now(),
            "public_url": ctx.settings.public_url,
            "path": request.url.path,
            **(context or {}),
        }
    )
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    remember_anon(request, response, who)
    return response


def remember_anon(request: Request, response: Response, who: Visitor) -> None:
    if who.new_anon:
        response.set_cookie(
            cookie_name(request, CSRF_COOKIE),
            who.anon_id,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
        )


def redirect(request: Request, url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    who: Visitor | None = getattr(request.state, "visitor", None)
    if who is not None:
        remember_anon(request, response, who)
    return response


def start_session(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(
        cookie_name(request, SESSION_COOKIE),
        session_id,
        max_age=int(services(request).sessions.ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def end_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        cookie_name(request, SESSION_COOKIE), httponly=True, samesite="lax", secure=_secure(request)
    )


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(request, "/login?next=" + quote(target, safe=""))


def error_page(request: Request, exc: MayflyError, title: str = "Something went wrong") -> Response:
    """The one place that turns a domain error into an HTML page."""
    headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else {}
    response = render(
        request, "error.html", {"title": title, "message": exc.message}, status=exc.status
    )
    response.headers.update(headers)
    return response


Handler = Callable[[Request], Awaitable[Response]]


def page(handler: Handler) -> Handler:
    """Resolve the visitor first, and render domain errors as HTML rather than JSON."""

    async def wrapped(request: Request) -> Response:
        await visitor(request)
        try:
            return await handler(request)
        except CSRFRejected as exc:
            return error_page(request, exc, "Form expired")
        except MayflyError as exc:
            return error_page(request, exc)
        except Exception:
            # The route's pattern, not the path: a claim path carries the claim token.
            route = getattr(request.scope.get("route"), "path", "?")
            log.exception("unexpected error on %s %s", request.method, route)
            return render(
                request,
                "error.html",
                {
                    "title": "Sorry, something broke",
                    "message": "Mayfly hit an internal error; it was logged. Try again, or report it.",
                },
                status=500,
            )

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
