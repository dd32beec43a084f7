"""U1–U4: who holds this token, and which accounts it reaches."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import as_caller, principal, services
from mayfly.api.envelope import failure, ok, paginate
from mayfly.api.openapi import (
    BOOLEAN,
    IDENTIFIER,
    INTEGER,
    PAGE_QUERY,
    STRING,
    TIMESTAMP,
    array,
    component,
    nullable,
    obj,
    operation,
)
from mayfly.model import Account, iso
from mayfly.services.container import Services

# A Worker paused because it took a data-plane shard down (services/workers/quarantine.py).
QUARANTINE = obj(
    {
        "script": STRING,
        "version_id": STRING,
        "kind": {"type": "string", "enum": ["unresponsive", "memory", "crashed"]},
        "reason": STRING,
        "detail": STRING,
        "started_at": TIMESTAMP,
        "until": TIMESTAMP,
        "seconds_left": INTEGER,
        "strikes": INTEGER,
    },
    "script",
    "until",
    "seconds_left",
)
# The whole account paused because several of its Workers were quarantined.
ACCOUNT_QUARANTINE = obj(
    {
        "scripts": array(STRING),
        "kind": {"type": "string", "enum": ["unresponsive", "memory", "crashed"]},
        "reason": STRING,
        "detail": STRING,
        "started_at": TIMESTAMP,
        "until": TIMESTAMP,
        "seconds_left": INTEGER,
        "strikes": INTEGER,
    },
    "scripts",
    "until",
    "seconds_left",
)
ACCOUNT = component(
    "account",
    obj(
        {
            "id": IDENTIFIER,
            "name": STRING,
            "type": STRING,
            "created_on": TIMESTAMP,
            "settings": obj({"enforce_twofactor": BOOLEAN}),
            "mayfly": obj(
                {
                    "kind": {"type": "string", "enum": ["temporary", "permanent"]},
                    "expires_at": nullable(TIMESTAMP),
                    "subdomain": STRING,
                    "quarantined": array(QUARANTINE),
                    "account_quarantine": nullable(ACCOUNT_QUARANTINE),
                }
            ),
        },
        "id",
        "name",
    ),
)
TOKEN_STATUS = obj({"id": STRING, "status": STRING}, "id", "status")


def render_account(
    account: Account,
    quarantined: list[dict[str, Any]],
    account_quarantine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "type": "standard",
        "created_on": iso(account.created_at),
        "settings": {"enforce_twofactor": False},
        "mayfly": {
            "kind": account.kind,
            "expires_at": iso(account.expires_at),
            "subdomain": account.subdomain,
            "quarantined": quarantined,
            "account_quarantine": account_quarantine,
        },
    }


def _rendered(svc: Services, found: list[Account]) -> list[dict[str, Any]]:
    """The accounts with their running quarantines (one query for all of them, one for the
    accounts' own)."""
    now = svc.ctx.clock.now()
    ids = [a.id for a in found]
    by_account: dict[str, list[dict[str, Any]]] = {a.id: [] for a in found}
    for q in svc.quarantine.active_in(ids):
        by_account[q.account_id].append(q.to_json(now))
    whole = svc.quarantine.active_accounts_in(ids)
    return [
        render_account(a, by_account[a.id], whole[a.id].to_json(now) if a.id in whole else None)
        for a in found
    ]


@operation(
    "GET",
    "Verify a user token (an account token answers 1000)",
    operation_id="user-api-tokens-verify-token",
    result=TOKEN_STATUS,
)
async def verify_user_token(request: Request) -> Response:
    who = await principal(request)
    if who.user_id is None:
        # Account-scoped tokens are verified under /accounts/{id}/tokens/verify; wrangler reads
        # code 1000 here as "this is an Account API Token".
        return failure(
            1000,
            f"This is an account API token; verify it at /accounts/{who.account_id}/tokens/verify.",
            401,
        )
    return ok({"id": who.token_id, "status": "active"})


@operation(
    "GET",
    "Verify an account token",
    operation_id="account-api-tokens-verify-token",
    result=TOKEN_STATUS,
)
async def verify_account_token(request: Request) -> Response:
    who = await principal(request)
    if who.account_id != request.path_params["account_id"]:
        return failure(9109, "This API token is not valid for that account.", 403)
    return ok({"id": who.token_id, "status": "active"})


@operation(
    "GET",
    "The user behind a user token",
    operation_id="user-user-details",
    result=obj({"id": STRING, "email": nullable(STRING)}, "id"),
)
async def user(request: Request) -> Response:
    who = await principal(request)
    if who.user_id is None:
        return failure(9109, "This account API token has no user details.", 403)
    return ok({"id": who.user_id, "email": who.email})


@operation(
    "GET",
    "The accounts this token reaches",
    operation_id="accounts-list-accounts",
    query=PAGE_QUERY,
    result=array(ACCOUNT),
    result_info=True,
)
async def list_accounts(request: Request) -> Response:
    svc = services(request)
    rendered = await as_caller(request, lambda who: _rendered(svc, svc.accounts.for_principal(who)))
    page, info = paginate(rendered, request)
    return ok(page, result_info=info)


@operation("GET", "One account", operation_id="accounts-account-details", result=ACCOUNT)
async def get_account(request: Request) -> Response:
    svc, account_id = services(request), request.path_params["account_id"]
    rendered = await as_caller(
        request, lambda who: _rendered(svc, [svc.accounts.require_access(who, account_id)])
    )
    return ok(rendered[0])


@operation(
    "GET",
    "The token's account memberships",
    operation_id="user-s-account-memberships-list-memberships",
    query=PAGE_QUERY,
    result=array(
        obj(
            {
                "id": STRING,
                "status": STRING,
                "account": obj({"id": IDENTIFIER, "name": STRING}),
                "roles": array(STRING),
                "permissions": {"type": "object"},
            }
        )
    ),
    result_info=True,
)
async def memberships(request: Request) -> Response:
    accounts = services(request).accounts
    who, found = await as_caller(request, lambda who: (who, accounts.for_principal(who)))
    items = [
        {
            "id": f"{a.id}-{who.token_id}",
            "status": "accepted",
            "account": {"id": a.id, "name": a.name},
            "roles": ["Administrator"],
            "permissions": {},
        }
        for a in found
    ]
    page, info = paginate(items, request)
    return ok(page, result_info=info)


routes = [
    Route("/user/tokens/verify", verify_user_token, methods=["GET"]),
    Route("/user", user, methods=["GET"]),
    Route("/accounts", list_accounts, methods=["GET"]),
    Route("/accounts/{account_id}", get_account, methods=["GET"]),
    Route("/accounts/{account_id}/tokens/verify", verify_account_token, methods=["GET"]),
    Route("/memberships", memberships, methods=["GET"]),
]
