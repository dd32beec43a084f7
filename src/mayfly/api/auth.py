"""Bearer tokens → a Principal, account-scoped access checks, and the worker threads in which
handlers do their blocking work (in_account, as_caller, in_thread: one thread per step)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import jwt
from starlette.requests import Request

from mayfly.errors import InvalidToken, Suspended
from mayfly.model import Account, Principal
from mayfly.services.container import services_of

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


services = services_of  # the Services this request's app was built with


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Missing API token: send `Authorization: Bearer <token>`.")
    return token.strip()


def signed_upload_token(request: Request) -> str:
    """An assets upload JWT, checked for this platform's signature and the path's account.

    Cheap and stateless, so it runs before an upload's body is read: a junk token gets its 401
    without the server reading what follows. The service checks the rest (expiry, revocation,
    the session) when it stores the files.
    """
    token = bearer_token(request)
    try:
        claims = jwt.decode(
            token,
            services(request).ctx.crypto.jwt_key,
            algorithms=["HS256"],
            # Times are the service's to check, against the platform's clock (assets.py).
            options={"verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(
            "The assets upload token is not one this platform issued; deploy again.",
            code=10020,
        ) from exc
    if claims.get("typ") != "upload" or claims.get("account_id") != request.path_params.get(
        "account_id"
    ):
        raise InvalidToken(
            "This is not an assets upload token for this account; deploy again.", code=10020
        )
    return token


def actor(who: Principal) -> str:
    """Who made a change, as the audit log names them: the user's email, else the token."""
    return who.email or f"token:{who.token_id[:8]}"


async def principal(request: Request) -> Principal:
    return await as_caller(request, lambda who: who)


async def as_caller(request: Request, work: Callable[[Principal], T]) -> T:
    """`work(who)` once the bearer token is authenticated, both in one worker thread (the routes
    that are not under an account: the token's user, its accounts, its tokens)."""
    token = bearer_token(request)
    tokens = services(request).tokens
    return await in_thread(lambda: work(tokens.authenticate(token)))


async def account_access(request: Request) -> tuple[Principal, Account]:
    """The caller and the account in the path; 9109 when the token is not for that account."""
    return await in_account(request, lambda who, account: (who, account))


async def in_account(request: Request, work: Callable[[Principal, Account], T]) -> T:
    """`work(who, account)` once the caller may use the account in the path (account_access's
    checks, in the same order), all in one worker thread: a handler's blocking calls go here
    rather than each in a thread of its own."""
    token = bearer_token(request)
    svc = services(request)
    account_id = request.path_params["account_id"]
    writes = request.method not in READ_METHODS

    def run() -> T:
        who = svc.tokens.authenticate(token)
        account = svc.accounts.require_access(who, account_id)
        if account.suspended_at is not None and writes:
            raise Suspended(
                f"The account {account.name} is suspended by the platform's operator: its "
                "tokens can read but not change anything."
            )
        return work(who, account)

    return await in_thread(run)


async def in_thread(work: Callable[[], T]) -> T:
    """`work()` in a worker thread: the blocking step of a handler that has to await something
    on the loop first (its body, read only once the caller is checked) or has no caller to check
    (signed URLs, the internal API). The one place the API hands work to a thread."""
    return await asyncio.to_thread(work)
