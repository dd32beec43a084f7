"""T1–T4: a user's API tokens (`/user/tokens`), for holders of a user token.

A user token (from `mayfly login` or the dashboard) is scoped to one account; through the API it
lists, creates and revokes the user's tokens *for that account* only, so that a token never
reaches further than its own scope. The dashboard manages tokens across all the user's accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import as_caller, in_thread, services
from mayfly.api.envelope import json_body, ok, paginate
from mayfly.api.openapi import (
    ANY_OBJECT,
    IDENTIFIER,
    PAGE_QUERY,
    STRING,
    TIMESTAMP,
    array,
    component,
    nullable,
    obj,
    operation,
)
from mayfly.errors import Forbidden, ValidationError
from mayfly.model import Principal, as_utc, iso
from mayfly.services.identity.user_tokens import TokenInfo
from mayfly.services.identity.users import User

T = TypeVar("T")
TAG = "User API tokens"
TOKEN = component(
    "user-token",
    obj(
        {
            "id": STRING,
            "name": STRING,
            "status": STRING,
            "issued_on": TIMESTAMP,
            "modified_on": TIMESTAMP,
            "expires_on": nullable(TIMESTAMP),
            "last_used_on": nullable(TIMESTAMP),
            "policies": array(ANY_OBJECT),
            "mayfly": obj({"account_id": IDENTIFIER, "account_name": STRING}),
            "value": STRING,
        },
        "id",
        "name",
        "status",
    ),
)


def render_token(info: TokenInfo, value: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": info.id,
        "name": info.name,
        "status": info.status,
        "issued_on": iso(info.created_at),
        "modified_on": iso(info.revoked_at or info.created_at),
        "expires_on": iso(info.expires_at),
        "last_used_on": None,
        "policies": [
            {
                "id": f"{info.id}-account",
                "effect": "allow",
                "resources": {f"com.cloudflare.api.account.{info.account_id}": "*"},
                "permission_groups": [{"id": "mayfly-account-admin", "name": "Account admin"}],
            }
        ],
        "mayfly": {"account_id": info.account_id, "account_name": info.account_name},
    }
    if value is not None:
        body["value"] = value
    return body


async def _as_user(request: Request, work: Callable[[Principal, User], T]) -> T:
    """`work(who, user)` once the token is known to be a user's (403 for an account token), all
    in one worker thread."""
    users = services(request).users

    def run(who: Principal) -> T:
        user = users.get(who.user_id) if who.user_id else None
        if user is None:
            raise Forbidden(
                "Only a user's token (from `mayfly login` or the dashboard) can manage API "
                "tokens; this is an account token."
            )
        return work(who, user)

    return await as_caller(request, run)


def _expiry(body: dict[str, Any]) -> datetime | None:
    raw = body.get("expires_on")
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ValidationError(
            "expires_on must be an ISO 8601 date-time, like 2027-01-31T00:00:00Z."
        )
    try:
        return as_utc(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except ValueError as exc:
        raise ValidationError(
            "expires_on must be an ISO 8601 date-time, like 2027-01-31T00:00:00Z."
        ) from exc


@operation(
    "GET",
    "The user's tokens for this token's account",
    operation_id="user-api-tokens-list-tokens",
    tag=TAG,
    query=PAGE_QUERY,
    result=array(TOKEN),
    result_info=True,
)
async def list_tokens(request: Request) -> Response:
    tokens = services(request).user_tokens
    found = await _as_user(request, lambda who, user: tokens.tokens_of(user.id, who.account_id))
    page, info = paginate([render_token(t) for t in found], request)
    return ok(page, result_info=info)


@operation(
    "POST",
    "Create a token for this token's account (its value is shown once)",
    operation_id="user-api-tokens-create-token",
    tag=TAG,
    body={
        "application/json": obj(
            {
                "name": {"type": "string", "maxLength": 120},
                "expires_on": {"type": "string", "format": "date-time"},
                "account_id": IDENTIFIER,
                "policies": array(ANY_OBJECT),
            },
            "name",
        )
    },
    body_required=True,
    result=TOKEN,
)
async def create_token(request: Request) -> Response:
    who, user = await _as_user(request, lambda who, user: (who, user))
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise ValidationError('Give the token a name: {"name": "laptop CLI"}.')
    account_id = body.get("account_id", who.account_id)
    if account_id != who.account_id:
        raise Forbidden("A token can only create tokens for its own account.")
    expires = _expiry(body)
    tokens = services(request).user_tokens
    info, value = await in_thread(
        lambda: tokens.create(user, who.account_id, name, expires, via="api")
    )
    return ok(render_token(info, value))


@operation("GET", "One token", operation_id="user-api-tokens-token-details", tag=TAG, result=TOKEN)
async def get_token(request: Request) -> Response:
    tokens, token_id = services(request).user_tokens, request.path_params["token_id"]
    info = await _as_user(request, lambda who, user: tokens.get(user.id, token_id, who.account_id))
    return ok(render_token(info))


@operation(
    "DELETE",
    "Revoke a token",
    operation_id="user-api-tokens-delete-token",
    tag=TAG,
    result=obj({"id": STRING}, "id"),
)
async def delete_token(request: Request) -> Response:
    tokens, token_id = services(request).user_tokens, request.path_params["token_id"]
    info = await _as_user(request, lambda who, user: tokens.revoke(user, token_id, who.account_id))
    return ok({"id": info.id})


routes = [
    Route("/user/tokens", list_tokens, methods=["GET"]),
    Route("/user/tokens", create_token, methods=["POST"]),
    Route("/user/tokens/{token_id}", get_token, methods=["GET"]),
    Route("/user/tokens/{token_id}", delete_token, methods=["DELETE"]),
]
