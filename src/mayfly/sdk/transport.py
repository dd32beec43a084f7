"""The client's plain HTTP/1.1 transport: the standard library's http.client, for the calls the
CLI and the MCP server make (`mayfly whoami` and a cached `mayfly deploy` import no httpx: httpx,
httpcore and h11 cost several times http.client's import time, paid by every command).

MayflyClient sends through it every envelope call whose body is JSON, bytes or multipart parts of
(filename, bytes, content type), unless a proxy is configured; `raw`/`request` (httpx.Response),
other bodies, a given transport or httpx client go through httpx (cli/ and mcp/ only ever see
MayflyClient). What a user sees is the same either way: the same request (tests/unit/
test_sdk_transport.py compares them; only Accept-Encoding differs: identity, as no JSON answer is
compressed), timeouts (10 s to connect, `timeout` for each read and write), TLS verified as httpx
verifies it (SSL_CERT_FILE, else SSL_CERT_DIR, else certifi's CA bundle), keep-alive connections
(one per request in flight, each checked before it is reused, as httpcore does), and a failure to
get an answer raised as APIUnreachable naming httpx's exception for it (ConnectError, ReadTimeout,
…). A client whose environment names a proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, or the system's
settings on macOS and Windows) sends everything through httpx, which applies them.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from mayfly.sdk.errors import unreachable

DEFAULT_PORTS = {"http": 80, "https": 443}
# What httpx leaves unescaped in a path (RFC 3986's pchar and "/"); "%" keeps escapes already made.
PATH_SAFE = "/%!$&'()*+,;=:@~"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


class Response:
    """A whole answer: status, headers (lower-case names), body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return json.loads(self.content)


def proxy_configured() -> bool:
    """Whether httpx (trust_env, its default) would send this process's requests to a proxy."""
    if sys.platform in ("darwin", "win32"):  # the system's settings count there too
        from urllib.request import getproxies

        found = getproxies()
        return any(found.get(scheme) for scheme in ("http", "https", "all"))
    return any(os.environ.get(n) or os.environ.get(n.upper()) for n in PROXY_VARIABLES)


def tls_context(api_url: str) -> ssl.SSLContext:
    """httpx's verification for an https:// API; an http:// API is never spoken to over TLS, so its
    context has no trust anchors (nothing to load): a TLS connection it were ever asked to make (a
    full https:// URL) fails verification rather than going unchecked."""
    if not api_url.startswith("https://"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    elif os.environ.get("SSL_CERT_FILE"):
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    elif os.environ.get("SSL_CERT_DIR"):
        context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


def encode_query(params: Mapping[str, Any]) -> str:
    """httpx's query string: True/False as true/false, None as empty."""

    def text(value: Any) -> str:
        if value is True or value is False:
            return "true" if value else "false"
        return "" if value is None else str(value)

    return urlencode([(key, text(value)) for key, value in params.items()])


# A multipart part as the SDK gives it: (filename or None, content, content type).
Part = tuple[str | None, bytes | str, str]
Files = Mapping[str, Part] | Sequence[tuple[str, Part]]
ARGUMENTS = frozenset({"params", "json", "content", "headers", "files"})
# httpx's (the HTML5 form) escapes in a part's name and filename
FORM_ESCAPES = {ord('"'): "%22", ord("\\"): "\\\\"} | {
    c: f"%{c:02X}" for c in range(0x20) if c != 0x1B
}


def encode_multipart(files: Files) -> tuple[str, bytes]:
    """multipart/form-data as httpx encodes it: its boundary form, headers and escapes."""
    boundary = os.urandom(16).hex()
    chunks: list[bytes] = []
    items = files.items() if isinstance(files, Mapping) else files
    for name, (filename, data, content_type) in items:
        head = f'Content-Disposition: form-data; name="{name.translate(FORM_ESCAPES)}"'
        if filename:
            head += f'; filename="{filename.translate(FORM_ESCAPES)}"'
        head += f"\r\nContent-Type: {content_type}\r\n\r\n"
        chunks += [f"--{boundary}\r\n".encode(), head.encode()]
        chunks += [data.encode() if isinstance(data, str) else data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


class _HTTPConnection(http.client.HTTPConnection):
    """Connects within `timeouts[0]` seconds, then waits `timeouts[1]` for each read and write."""

    def __init__(self, host: str, port: int, timeouts: tuple[float, float]) -> None:
        super().__init__(host, port, timeout=timeouts[0])
        self.read_timeout = timeouts[1]
        self.connected = False

    def connect(self) -> None:
        self.connected = False
        super().connect()
        self.sock.settimeout(self.read_timeout)
        self.connected = True


class _HTTPSConnection(_HTTPConnection, http.client.HTTPSConnection):
    """The same, over TLS (the handshake is part of connecting: HTTPSConnection.connect, which
    `_HTTPConnection.connect` reaches through the method order)."""

    def __init__(
        self, host: str, port: int, timeouts: tuple[float, float], context: ssl.SSLContext
    ) -> None:
        http.client.HTTPSConnection.__init__(self, host, port, timeout=timeouts[0], context=context)
        self.read_timeout = timeouts[1]
        self.connected = False


Origin = tuple[str, str, int]
Connection = _HTTPConnection | _HTTPSConnection


class PlainTransport:
    """Keep-alive connections per origin; safe to share between threads."""

    def __init__(
        self, api_url: str, timeouts: tuple[float, float], headers: Mapping[str, str]
    ) -> None:
        """`timeouts`: to connect, then for each read and write."""
        self.api_url = api_url
        self.timeouts = timeouts
        self.headers = {"accept": "*/*", **{k.lower(): v for k, v in headers.items()}}
        self._idle: dict[Origin, list[Connection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    @staticmethod
    def accepts(arguments: Mapping[str, Any]) -> bool:
        """Whether the plain transport sends a call with these keyword arguments as httpx would; any
        other (form data, file objects, parts without a content type) goes through httpx."""
        if not arguments.keys() <= ARGUMENTS:
            return False
        files = arguments.get("files")
        if not files:
            return True
        headers = arguments.get("headers") or {}
        if any(name.lower() == "content-type" for name in headers):
            return False  # httpx would take the boundary from it
        items = files.items() if isinstance(files, Mapping) else files
        return all(
            isinstance(name, str)
            and isinstance(part, tuple)
            and len(part) == 3
            and isinstance(part[0], str | None)
            and isinstance(part[1], bytes | str)
            and isinstance(part[2], str)
            for name, part in items
        )

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | str | None = None,
        files: Files | None = None,
    ) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        origin = (scheme, host, parts.port or DEFAULT_PORTS.get(scheme, 0))
        target = quote(parts.path or "/", safe=PATH_SAFE)
        query = "&".join(q for q in (parts.query, encode_query(params or {})) if q)
        if query:
            target += "?" + query
        body: bytes | None = None
        fields = {**self.headers, **{k.lower(): v for k, v in headers.items()}}
        if content is not None:  # httpx's order: content, files, json
            body = content.encode() if isinstance(content, str) else content
        elif files:
            content_type, body = encode_multipart(files)
            fields.setdefault("content-type", content_type)
        elif json_body is not None:
            body = json.dumps(
                json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            fields.setdefault("content-type", "application/json")
        connection = self._take(origin)
        try:
            connection.request(method, target, body=body, headers=fields)
            answer = connection.getresponse()
            response = Response(
                answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
            )
        except (OSError, http.client.HTTPException, ValueError) as exc:
            connection.close()
            raise unreachable(self.api_url, _failure_name(exc, connection.connected), exc) from exc
        except BaseException:
            connection.close()
            raise
        if answer.will_close:
            connection.close()
        else:
            self._put(origin, connection)
        return response

    def close(self) -> None:
        """Closes the idle connections, and those in use once their answer is read."""
        with self._lock:
            idle, self._idle = self._idle, {}
            self._closed = True
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _take(self, origin: Origin) -> Connection:
        """An idle connection to `origin` the server has not closed, else a new one."""
        while True:
            with self._lock:
                connection = self._idle.get(origin, []).pop() if self._idle.get(origin) else None
            if connection is None:
                return self._connection(origin)
            if connection.sock is not None and not _readable(connection.sock):
                return connection
            connection.close()  # closed by the server while idle (or sent what was not asked)

    def _put(self, origin: Origin, connection: Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.setdefault(origin, []).append(connection)
                return
        connection.close()

    def _connection(self, origin: Origin) -> Connection:
        scheme, host, port = origin
        if scheme == "http":
            return _HTTPConnection(host, port, self.timeouts)
        if scheme == "https":
            if self._tls is None:
                self._tls = tls_context(self.api_url)
            return _HTTPSConnection(host, port, self.timeouts, self._tls)
        problem = ValueError(f"Request URL has an unsupported protocol '{scheme}://'.")
        raise unreachable(self.api_url, "UnsupportedProtocol", problem)


def _readable(sock: socket.socket) -> bool:
    """An idle keep-alive socket is readable only once the server closed it (or misbehaved)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _failure_name(exc: BaseException, connected: bool) -> str:
    """httpx's exception for what went wrong, so that messages read the same with either."""
    # A header value http.client refuses to send (a newline); a failed certificate check is a
    # ValueError too, but an OSError (ssl.SSLError) first.
    if isinstance(exc, ValueError) and not isinstance(exc, OSError):
        return "LocalProtocolError"
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
        return "RemoteProtocolError"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "RemoteProtocolError"
    if isinstance(exc, TimeoutError):
        return "ReadTimeout" if connected else "ConnectTimeout"
    return "ReadError" if connected else "ConnectError"
