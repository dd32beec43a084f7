"""What the SDK raises. API failures keep Cloudflare's numeric code; client-side ones a string code."""

from __future__ import annotations

from typing import Any


class SDKError(Exception):
    """Base of every SDK error: a stable `code` and a message that says what to do next."""

    code: int | str = "error"

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def details(self) -> dict[str, Any]:
        """Structured facts for `--json` output, next to code and message."""
        return {}


class MayflyAPIError(SDKError):
    """The API answered with an error envelope (or with something that is not one)."""

    code: int

    def __init__(self, code: int, message: str, status: int) -> None:
        super().__init__(message, code=code)
        self.status = status

    def __repr__(self) -> str:
        return f"MayflyAPIError(code={self.code}, message={self.message!r}, status={self.status})"


class TemporaryAccountClaimed(MayflyAPIError):
    """A human claimed the temporary account: it is theirs, and its token no longer works.

    Nothing is provisioned in its place: the agent is told how that human can give it access."""

    def __init__(
        self,
        message: str,
        status: int,
        *,
        account_id: str,
        account_name: str,
        claimed_at: str | None,
        login_command: str,
        dashboard_url: str,
    ) -> None:
        super().__init__(TEMPORARY_CLAIMED, message, status)
        self.account_id = account_id
        self.account_name = account_name
        self.claimed_at = claimed_at
        self.login_command = login_command
        self.dashboard_url = dashboard_url

    @property
    def details(self) -> dict[str, Any]:
        return {
            "claimed": {
                "account_id": self.account_id,
                "account_name": self.account_name,
                "claimed_at": self.claimed_at,
                "new_temporary_account": False,
                "get_access": {
                    "login": self.login_command,
                    "dashboard_token": self.dashboard_url,
                    "env": "MAYFLY_API_TOKEN",
                },
            }
        }


class APIUnreachable(SDKError):
    """No HTTP answer at all: wrong URL, server down, timeout."""

    code = "api_unreachable"


def unreachable(api_url: str, failure: str, error: BaseException) -> APIUnreachable:
    """No answer from the API at `api_url`; `failure` is httpx's name for what went wrong
    (ConnectError, ReadTimeout, …), whichever transport it was."""
    return APIUnreachable(
        f"Could not reach the Mayfly API at {api_url} ({failure}: {error}). "
        "Is `mayfly serve` running there? Set --api-url or MAYFLY_API_URL."
    )


class ChallengeUnsupported(SDKError):
    """The proof-of-work challenge is malformed or asks for more work than a client accepts."""

    code = "pow_unsupported"


class CredentialsError(SDKError):
    """No usable credentials, or a combination that cannot be used."""

    code = "no_credentials"


# Error codes the API gives meaning to (DESIGN §3); the SDK and the CLI act on them.
INVALID_TOKEN = 10000  # no token sent
MALFORMED_TOKEN = 6003  # not of the form mfp_…/mft_… (Cloudflare's code, 6111 in error_chain)
TEMPORARY_EXPIRED = 10001
TEMPORARY_CLAIMED = 10002
FORBIDDEN = 9109  # 403; with 401 "Invalid access token": unknown, revoked or expired token
SCRIPT_NOT_FOUND = 10007
SUSPENDED = 10060  # the account or the Worker is suspended or quarantined
VALIDATION = 10021
