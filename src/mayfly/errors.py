"""Domain errors with stable codes. They become HTTP only at the edge (api/, pages/)."""

from __future__ import annotations


class MayflyError(Exception):
    """An error the user can act on. `code` is stable; `status` is its HTTP status at the edge."""

    code: int = 10021
    status: int = 400

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidToken(MayflyError):
    code, status = 10000, 401


class UnknownToken(InvalidToken):
    """A well-formed token this platform does not know, or one revoked or expired: Cloudflare's
    9109 "Invalid access token". wrangler prints it as one error; on 10000 it runs its
    authentication-error handler, whose own requests fail again (a second error, a stack trace)."""

    code, status = 9109, 401


class MalformedToken(InvalidToken):
    """A bearer token that is not of this platform's form: Cloudflare's 400 with 6003 and, in its
    `error_chain`, 6111."""

    code, status = 6003, 400
    error_chain = ({"code": 6111, "message": "Invalid format for Authorization header"},)


class TemporaryAccountExpired(MayflyError):
    code, status = 10001, 401


class TemporaryAccountClaimed(MayflyError):
    code, status = 10002, 401


class Forbidden(MayflyError):
    code, status = 9109, 403


class ScriptNotFound(MayflyError):
    code, status = 10007, 404


class NotFound(MayflyError):
    code, status = 10404, 404


class NamespaceTitleExists(MayflyError):
    code, status = 10014, 400


class ValidationError(MayflyError):
    code, status = 10021, 400


class ProofOfWorkInvalid(MayflyError):
    code, status = 1019, 403


class RetryLater(MayflyError):
    """An error that says when to try again: `retry_after` seconds (at least 1), sent as the
    response's Retry-After."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class RateLimited(RetryLater):
    code, status = 10429, 429


class Suspended(MayflyError):
    code, status = 10060, 503


class Quarantined(RetryLater, Suspended):
    """A Worker quarantined for taking a data-plane shard down; `retry_after`: seconds left."""


class Conflict(MayflyError):
    code, status = 10409, 409


class PayloadTooLarge(MayflyError):
    """A request body over its route's limit (refused while it streams, never buffered whole)."""

    code, status = 10413, 413


class KeyNotFound(MayflyError):
    code, status = 10009, 404


class NamespaceNotFound(MayflyError):
    code, status = 10013, 404


class SecretNotFound(MayflyError):
    code, status = 10056, 404


class QuotaExceeded(MayflyError):
    """An account quota (stored bytes, Workers, namespaces, keys, asset files) is reached."""

    code, status = 10440, 413


# An event code that provisions no account: Cloudflare's codes, which wrangler's --event-code maps
# to one clear line ("The event code was not found.", "This event has ended.", "This event has no
# temporary accounts remaining.").
class EventNotFound(MayflyError):
    code, status = 1036, 404


class EventEnded(MayflyError):
    """The event was ended, or passed its --expires-at."""

    code, status = 1038, 403


class EventExhausted(MayflyError):
    """Every account of the event's budget was provisioned."""

    code, status = 1040, 403


class BucketExists(MayflyError):
    """R2: the account already has a bucket with that name (Cloudflare's 10004)."""

    code, status = 10004, 409


class InvalidBucketName(MayflyError):
    code, status = 10005, 400


class BucketNotFound(MayflyError):
    code, status = 10006, 404


class ObjectNotFound(MayflyError):
    """R2: no object (or multipart upload) under that key (Cloudflare's 10007, NoSuchKey)."""

    code, status = 10007, 404


class BucketNotEmpty(MayflyError):
    code, status = 10008, 409


class RangeNotSatisfiable(MayflyError):
    code, status = 10039, 416


class ChecksumMismatch(MayflyError):
    """R2: a checksum the writer gave does not match the bytes (Cloudflare's 10037, BadDigest)."""

    code, status = 10037, 400


class D1DatabaseNotFound(MayflyError):
    """Cloudflare's D1 code for a database that is not in the account (wrangler checks 7404)."""

    code, status = 7404, 404


class D1NameExists(MayflyError):
    code, status = 7502, 400


class D1QueryError(MayflyError):
    """A statement D1 refuses or SQLite fails: Cloudflare's 7500 with SQLite's words."""

    code, status = 7500, 400
