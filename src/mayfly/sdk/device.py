"""The client side of `mayfly login`: OAuth 2.0 device authorization (RFC 8628), and revoking the
token it got (`mayfly logout`).

The server answers `/oauth/*` in OAuth's own shape (`{"error", "error_description"}`), not in
Cloudflare's envelope; `/client/v4/user/tokens…` answers in the envelope.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mayfly.sdk.client import API_PREFIX, normalise_api_url
from mayfly.sdk.errors import APIUnreachable, MayflyAPIError, SDKError
from mayfly.sdk.wire import USER_AGENT

CLIENT_ID = "mayfly-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5


class DeviceLoginFailed(SDKError):
    """The login did not complete: `code` is the OAuth error (access_denied, expired_token, …)."""


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class DeviceToken:
    access_token: str
    token_id: str
    account_id: str
    account_name: str
    email: str


MESSAGES = {
    "access_denied": "The log-in was denied in the browser.",
    "expired_token": "The code expired before it was approved; run `mayfly login` again.",
    "invalid_grant": "The server no longer knows this log-in; run `mayfly login` again.",
    "invalid_client": "The server does not accept this CLI as an OAuth client.",
}


class DeviceLoginClient:
    """Talks to one server's device flow and user-token endpoints."""

    def __init__(
        self,
        api_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.api_url = normalise_api_url(api_url)
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"user-agent": USER_AGENT},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DeviceLoginClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _post_form(self, path: str, data: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http.post(self.api_url + path, data=data)
        except httpx.HTTPError as exc:
            raise APIUnreachable(f"Could not reach {self.api_url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DeviceLoginFailed(
                f"{self.api_url}{path} answered HTTP {response.status_code} without JSON; "
                "is this a Mayfly server?",
                code="unexpected_response",
            )
        return response.status_code, body

    def start(self) -> DeviceAuthorization:
        status, body = self._post_form("/oauth/device/code", {"client_id": CLIENT_ID})
        if status != 200:
            raise _failure(body)
        try:
            return DeviceAuthorization(
                device_code=str(body["device_code"]),
                user_code=str(body["user_code"]),
                verification_uri=str(body["verification_uri"]),
                verification_uri_complete=str(
                    body.get("verification_uri_complete") or body["verification_uri"]
                ),
                expires_in=int(body["expires_in"]),
                interval=int(body.get("interval", 5)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeviceLoginFailed(
                f"Malformed device authorization: {exc}", code="unexpected_response"
            ) from exc

    def wait(
        self,
        auth: DeviceAuthorization,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> DeviceToken:
        """Poll until approved (RFC 8628 §3.4–3.5): wait `interval`, +5 s on every slow_down."""
        interval = max(1, auth.interval)
        deadline = clock() + auth.expires_in
        while True:
            sleep(interval)
            status, body = self._post_form(
                "/oauth/token",
                {
                    "grant_type": DEVICE_GRANT,
                    "device_code": auth.device_code,
                    "client_id": CLIENT_ID,
                },
            )
            if status == 200 and isinstance(body.get("access_token"), str):
                return DeviceToken(
                    access_token=body["access_token"],
                    token_id=str(body.get("token_id", "")),
                    account_id=str(body.get("account_id", "")),
                    account_name=str(body.get("account_name", "")),
                    email=str(body.get("email", "")),
                )
            error = body.get("error")
            if error == "authorization_pending":
                pass
            elif error == "slow_down":
                interval += SLOW_DOWN_STEP
            else:
                raise _failure(body)
            if clock() >= deadline:
                raise DeviceLoginFailed(MESSAGES["expired_token"], code="expired_token")

    def revoke(self, token: str) -> bool:
        """Revoke a user token with itself. False if the server already refuses it (401)."""
        headers = {"authorization": f"Bearer {token}"}
        base = self.api_url + API_PREFIX
        try:
            verify = self._http.get(base + "/user/tokens/verify", headers=headers)
            if verify.status_code == 401:
                return False
            token_id = _envelope(verify)["id"]
            _envelope(self._http.delete(f"{base}/user/tokens/{token_id}", headers=headers))
        except httpx.HTTPError as exc:
            raise APIUnreachable(f"Could not reach {self.api_url}: {exc}") from exc
        return True


def _failure(body: dict[str, Any]) -> DeviceLoginFailed:
    code = str(body.get("error") or "unexpected_response")
    message = MESSAGES.get(code) or str(body.get("error_description") or f"Login failed: {code}")
    return DeviceLoginFailed(message, code=code)


def _envelope(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("success") is True:
        return body.get("result")
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        raise MayflyAPIError(
            int(errors[0].get("code", 0)), str(errors[0].get("message", "")), response.status_code
        )
    raise MayflyAPIError(
        0, f"HTTP {response.status_code} without an API envelope.", response.status_code
    )


def forget_login(path: Path, api_url: str) -> bool:
    """Remove the saved login for api_url from LoginStore's file (same format, 0600, atomic).

    Lives here until the credentials module offers it; returns whether there was one.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    entries = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or entries.pop(normalise_api_url(api_url), None) is None:
        return False
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({**data, "accounts": entries}, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True
