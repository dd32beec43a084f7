"""P3: claim status of a temporary account, for the agent that holds its token.

Answers with the token even after a claim (its token then gets 10002 everywhere else) and after
deletion (from the tombstone), so that a CLI can tell its human what happened.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import bearer_token, in_thread, services
from mayfly.api.envelope import ok
from mayfly.api.openapi import STRING, TIMESTAMP, nullable, obj, operation
from mayfly.model import iso_seconds


@operation(
    "GET",
    "Claim status of a temporary account, for the holder of its token (even once claimed)",
    tag="Provisioning",
    result=obj(
        {
            "id": STRING,
            "name": STRING,
            "status": STRING,
            "expiresAt": nullable(TIMESTAMP),
            "claimedAt": nullable(TIMESTAMP),
            "deletedAt": nullable(TIMESTAMP),
        },
        "id",
        "status",
    ),
)
async def preview_status(request: Request) -> Response:
    claims, token = services(request).claims, bearer_token(request)
    account_id = request.path_params["account_id"]
    found = await in_thread(lambda: claims.preview_status(token, account_id))
    return ok(
        {
            "id": found.id,
            "name": found.name,
            "status": found.status,
            "expiresAt": iso_seconds(found.expires_at) if found.expires_at else None,
            "claimedAt": iso_seconds(found.claimed_at) if found.claimed_at else None,
            "deletedAt": iso_seconds(found.deleted_at) if found.deleted_at else None,
        }
    )


routes = [
    Route("/provisioning/previews/{account_id}", preview_status, methods=["GET"]),
]
