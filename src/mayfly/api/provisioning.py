"""P1/P2: proof-of-work challenge and temporary account creation (no auth, limited per address)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import in_thread, services
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import BOOLEAN, IDENTIFIER, INTEGER, STRING, TIMESTAMP, obj, operation
from mayfly.model import iso_seconds
from mayfly.services.core.ratelimit import client_address

TAG = "Provisioning"


@operation(
    "POST",
    "A proof-of-work challenge for creating a temporary account (no token)",
    tag=TAG,
    auth="none",
    result=obj(
        {
            "challengeToken": STRING,
            "seed": STRING,
            "k": INTEGER,
            "g": INTEGER,
            "termsOfService": STRING,
            "privacyPolicy": STRING,
        },
        "challengeToken",
        "seed",
        "k",
        "g",
    ),
)
async def challenge(request: Request) -> Response:
    provisioning, client = services(request).provisioning, client_address(request)
    return ok(await in_thread(lambda: provisioning.challenge(client)))


@operation(
    "POST",
    "Create a temporary account from a solved challenge (no token)",
    tag=TAG,
    auth="none",
    body={
        "application/json": obj(
            {
                "acceptTermsOfService": {"type": "string", "enum": ["yes"]},
                "challengeToken": STRING,
                "solution": obj({"checkpoints": STRING}, "checkpoints"),
                "eventCode": STRING,
            },
            "acceptTermsOfService",
            "challengeToken",
            "solution",
        )
    },
    body_required=True,
    result=obj(
        {
            "account": obj(
                {
                    "id": IDENTIFIER,
                    "name": STRING,
                    "apiToken": STRING,
                    "expiresAt": TIMESTAMP,
                },
                "id",
                "name",
                "apiToken",
            ),
            "claim": obj({"url": STRING, "expiresAt": TIMESTAMP}, "url"),
            "eventCodeAccepted": BOOLEAN,
        },
        "account",
        "claim",
    ),
)
async def create(request: Request) -> Response:
    body = await json_body(request)
    created = await services(request).provisioning.create(body, client_address(request))
    account = created.account
    assert account.expires_at is not None
    expires = iso_seconds(account.expires_at)
    result: dict[str, object] = {
        "account": {
            "id": account.id,
            "name": account.name,
            "apiToken": created.api_token,
            "expiresAt": expires,
        },
        "claim": {"url": created.claim_url, "expiresAt": expires},
    }
    if isinstance(body.get("eventCode"), str) and body["eventCode"].strip():
        # The code was checked (an unknown or closed one raised): wrangler requires this flag.
        result["eventCodeAccepted"] = True
    return ok(result)


routes = [
    Route("/provisioning/previews/challenge", challenge, methods=["POST"]),
    Route("/provisioning/previews", create, methods=["POST"]),
]
