"""OAuth 2.0 device authorization grant (RFC 8628) for `mayfly login`; RFC 6749 error shapes.

POST /oauth/device/code  client_id=mayfly-cli
POST /oauth/token        grant_type=urn:ietf:params:oauth:grant-type:device_code, device_code, client_id
Bodies are form-encoded (as the RFC says) or JSON.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mayfly.api.auth import in_thread, services
from mayfly.errors import RateLimited, ValidationError
from mayfly.services.core import strict_json
from mayfly.services.core.ratelimit import client_address
from mayfly.services.identity.device_auth import GRANT_TYPE, OAuthError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _params(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data: Any = strict_json.loads(await request.body() or b"{}")
        except ValidationError as exc:
            raise OAuthError("invalid_request", exc.message) from exc
        if not isinstance(data, dict):
            raise OAuthError("invalid_request", "The body must be a JSON object.")
        if not all(isinstance(v, str) for v in data.values() if v is not None):
            raise OAuthError("invalid_request", "Every parameter must be a string.")
        return {str(k): v for k, v in data.items() if v is not None}
    try:
        form = await request.form(max_files=0, max_fields=20)
    except (MultiPartException, HTTPException) as exc:
        raise OAuthError("invalid_request", "The body is not a form.") from exc
    try:
        return {k: v for k, v in form.items() if isinstance(v, str)}
    finally:
        await form.close()


def _error(exc: OAuthError) -> Response:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=NO_STORE,
    )


async def device_code(request: Request) -> Response:
    try:
        params = await _params(request)
        device_auth, client_id = services(request).device_auth, params.get("client_id", "")
        address = client_address(request)
        code = await in_thread(lambda: device_auth.start(client_id, address))
    except OAuthError as exc:
        return _error(exc)
    except RateLimited as exc:
        # OAuth's shape (the CLI reads error_description), 10429's status and Retry-After.
        response = _error(OAuthError("slow_down", exc.message, exc.status))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return JSONResponse(
        {
            "device_code": code.device_code,
            "user_code": code.user_code,
            "verification_uri": code.verification_uri,
            "verification_uri_complete": code.verification_uri_complete,
            "expires_in": code.expires_in,
            "interval": code.interval,
        },
        headers=NO_STORE,
    )


async def token(request: Request) -> Response:
    try:
        params = await _params(request)
        if params.get("grant_type") != GRANT_TYPE:
            raise OAuthError(
                "unsupported_grant_type", f"Only grant_type={GRANT_TYPE} is supported."
            )
        if not params.get("device_code"):
            raise OAuthError("invalid_request", "device_code is required.")
        device_auth, client_id = services(request).device_auth, params.get("client_id", "")
        device_code = params["device_code"]
        issued = await in_thread(lambda: device_auth.poll(client_id, device_code))
    except OAuthError as exc:
        return _error(exc)
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "account_id": issued.account_id,
            "account_name": issued.account_name,
            "email": issued.email,
            "token_id": issued.token_id,
        },
        headers=NO_STORE,
    )


routes = [
    Route("/oauth/device/code", device_code, methods=["POST"]),
    Route("/oauth/token", token, methods=["POST"]),
]
