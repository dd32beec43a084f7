"""Bearer tokens → a Principal, and account-scoped access checks."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from mayfly.errors import InvalidToken
from mayfly.model import Account, Principal
from mayfly.services.container import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Missing API token: send `Authorization: Bearer <token>`.")
    return token.strip()


async def principal(request: Request) -> Principal:
    return await asyncio.to_thread(services(request).tokens.authenticate, bearer_token(request))


async def account_access(request: Request) -> tuple[Principal, Account]:
    """The caller and the account in the path; 9109 when the token is not for that account."""
    who = await principal(request)
    account = await asyncio.to_thread(
        services(request).accounts.require_access, who, request.path_params["account_id"]
    )
    return who, account
