"""P1/P2: proof-of-work challenge and temporary account creation (no auth, limited per address)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import services
from mayfly.api.envelope import json_body, ok
from mayfly.model import iso_seconds
from mayfly.services.ratelimit import client_address


async def challenge(request: Request) -> Response:
    return ok(services(request).provisioning.challenge(client_address(request)))


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
        # Event codes are not part of this platform; acknowledging keeps wrangler's flow working.
        result["eventCodeAccepted"] = True
    return ok(result)


routes = [
    Route("/provisioning/previews/challenge", challenge, methods=["POST"]),
    Route("/provisioning/previews", create, methods=["POST"]),
]
