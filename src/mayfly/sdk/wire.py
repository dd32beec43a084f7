"""How MayflyClient reaches the API (http.client, else httpx) and reads the envelope it answers."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mayfly import __version__
from mayfly.sdk.errors import MayflyAPIError

if TYPE_CHECKING:
    import httpx

    from mayfly.sdk.transport import PlainTransport

USER_AGENT = f"mayfly/{__version__}"
# Malformed or non-envelope answers get this code (Cloudflare has none for "not our API").
MALFORMED = 0
# 429 and 503 are retried this many times, honouring Retry-After up to MAX_RETRY_WAIT seconds.
RETRIES = 2
MAX_RETRY_WAIT = 10.0
CONNECT_TIMEOUT = 10.0


class Answer(Protocol):
    """What the client reads of an answer: an httpx.Response or the plain transport's Response."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def is_success(self) -> bool: ...
    def json(self) -> Any: ...


A = TypeVar("A", bound=Answer)


class Connections:
    """What a client and its `with_token()` copies share: the plain transport (mayfly/sdk/
    transport.py), unless a transport or httpx client was given or a proxy is configured, and
    httpx's client, made when a call first needs it (`raw`, `request`, a body only httpx
    encodes)."""

    def __init__(
        self,
        api_url: str,
        timeout: float,
        transport: httpx.BaseTransport | None,
        http: httpx.Client | None,
    ) -> None:
        self.api_url = api_url
        self.timeout = timeout
        self.transport = transport
        self.http = http
        self.owns_http = http is None
        self.plain_allowed = transport is None and http is None
        self._plain: PlainTransport | None = None
        self._lock = threading.Lock()

    def plain(self) -> PlainTransport | None:
        """Made (and http.client imported) by the first call: a command that fails before it
        asks the API anything imports no HTTP client at all."""
        with self._lock:
            if self._plain is None and self.plain_allowed:
                from mayfly.sdk.transport import PlainTransport, proxy_configured

                if proxy_configured():
                    self.plain_allowed = False
                else:
                    timeouts = (CONNECT_TIMEOUT, self.timeout)
                    self._plain = PlainTransport(self.api_url, timeouts, {"user-agent": USER_AGENT})
            return self._plain

    def httpx_client(self) -> httpx.Client:
        with self._lock:
            if self.http is None:
                import httpx

                from mayfly.sdk.transport import tls_context

                self.http = httpx.Client(
                    transport=self.transport,
                    verify=tls_context(self.api_url),
                    timeout=httpx.Timeout(self.timeout, connect=CONNECT_TIMEOUT),
                    headers={"user-agent": USER_AGENT},
                    follow_redirects=False,
                )
            return self.http

    def close(self) -> None:
        if self._plain is not None:
            self._plain.close()
        if self.owns_http and self.http is not None:
            self.http.close()


def retry_after(response: Answer) -> float | None:
    """Seconds to wait before retrying, or None: only 429 and 503 that say when to come back."""
    header = response.headers.get("retry-after")
    if response.status_code not in (429, 503) or header is None:
        return None
    try:
        wait = float(header)
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_RETRY_WAIT else None


def unwrap(response: Answer) -> dict[str, Any]:
    status = response.status_code
    if status in (204, 205) and not response.content:
        return {"success": True, "result": None}
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise MayflyAPIError(
            MALFORMED,
            f"The API answered {status} with something that is not Cloudflare's JSON envelope; "
            "is the API URL a Mayfly server?",
            status,
        )
    errors = body.get("errors") or []
    if response.is_success and body.get("success", True) is not False:
        return body
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = first.get("code")
    message = " ".join(
        str(e.get("message", "")) for e in errors if isinstance(e, dict) and e.get("message")
    )
    raise MayflyAPIError(
        code if isinstance(code, int) else MALFORMED,
        message or f"The API answered {status} without a message.",
        status,
    )
