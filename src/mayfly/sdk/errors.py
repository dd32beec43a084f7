"""What the SDK raises. API failures keep Cloudflare's numeric code; client-side ones a string code."""

from __future__ import annotations


class SDKError(Exception):
    """Base of every SDK error: a stable `code` and a message that says what to do next."""

    code: int | str = "error"

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class MayflyAPIError(SDKError):
    """The API answered with an error envelope (or with something that is not one)."""

    code: int

    def __init__(self, code: int, message: str, status: int) -> None:
        super().__init__(message, code=code)
        self.status = status

    def __repr__(self) -> str:
        return f"MayflyAPIError(code={self.code}, message={self.message!r}, status={self.status})"


class APIUnreachable(SDKError):
    """No HTTP answer at all: wrong URL, server down, timeout."""

    code = "api_unreachable"


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
