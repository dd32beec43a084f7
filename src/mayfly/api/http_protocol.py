"""uvicorn's HTTP protocol, answering requests it cannot parse in Cloudflare's envelope, and
holding each client address to a bounded number of connections, each with a deadline for its
request head.

httptools refuses a request line or headers over 80 KiB (a KV key of 100 KB in the URL, say) and
malformed HTTP before the app sees anything; uvicorn then answers a plain-text 400. The status
stays; the body becomes the API's JSON error.

uvicorn itself times out only idle keep-alive connections: a connection that sends nothing, or
a request head one byte at a time (slowloris), is held for ever, and about 20,000 of them from one
client took every file descriptor of the server, so no one else was answered. On the public API
(`ConnectionLimits`) a connection must finish its request head within `--request-head-timeout`
seconds (else 408, or closed if it sent nothing), and one client address (IPv6: its /64) holds at
most `--connections-per-address` connections at once (past it the new one gets 429 and is
closed). Loopback peers (the server's own remote-MCP calls, a proxy on the same host) and the
proxies in `--forwarded-allow-ips` are not counted: a proxy speaks for many clients.
"""

from __future__ import annotations

import asyncio
import ipaddress

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mayfly.api.envelope import failure
from mayfly.services.core.ratelimit import address_group

UNPARSABLE_CODE = 10021  # a validation error, as every other bad input
RATE_LIMITED_CODE = 10429
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 429: b"Too Many Requests"}
_SWEEP_EVERY = 1024  # connections admitted between sweeps of addresses no longer connected


class ConnectionLimits:
    """Open connections by client address: at most `per_address` each, except exempt peers.

    Connections are counted by transport, and a transport counts while it is not closing: a
    connection upgraded to a WebSocket (a tail) keeps counting under the protocol that took it
    over, and stops when it closes, whether or not the HTTP protocol heard of its end.
    """

    def __init__(self, per_address: int, head_timeout: float, trusted_proxies: str = "") -> None:
        self.per_address = per_address
        self.head_timeout = head_timeout
        entries = [e.strip() for e in trusted_proxies.split(",") if e.strip()]
        self._exempt_all = "*" in entries
        self._exempt: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            try:
                self._exempt.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue  # a host name or socket path: never a TCP peer's address
        self._open: dict[str, set[asyncio.BaseTransport]] = {}
        self._admitted = 0

    def exempt(self, host: str) -> bool:
        if self._exempt_all:
            return True
        try:
            address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return True  # not an IP peer (a Unix socket): nothing to key on
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback or any(address in net for net in self._exempt)

    def admit(self, host: str | None, transport: asyncio.BaseTransport) -> bool:
        """Count `transport` under its peer's address; False (not counted) when that address
        already holds its limit."""
        if self.per_address <= 0 or host is None or self.exempt(host):
            return True
        self._admitted += 1
        if self._admitted % _SWEEP_EVERY == 0:
            self._sweep()
        key = address_group(host)
        held = self._open.setdefault(key, set())
        if len(held) >= self.per_address:
            held.difference_update([t for t in held if t.is_closing()])
            if len(held) >= self.per_address:
                return False
        held.add(transport)
        return True

    def release(self, host: str | None, transport: asyncio.BaseTransport) -> None:
        if host is None:
            return
        key = address_group(host)
        held = self._open.get(key)
        if held is not None:
            held.discard(transport)
            if not held:
                del self._open[key]

    def held(self, host: str) -> int:
        """Connections `host`'s address holds now (tests, metrics)."""
        return sum(not t.is_closing() for t in self._open.get(address_group(host), ()))

    def _sweep(self) -> None:
        for key in list(self._open):
            held = self._open[key]
            held.difference_update([t for t in held if t.is_closing()])
            if not held:
                del self._open[key]


def _envelope(status: int, code: int, message: str, extra: list[bytes] | None = None) -> bytes:
    body = bytes(failure(code, message, status).body)
    head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
    head += extra or []
    head.append(b"content-type: application/json\r\n")
    head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
    head.append(b"connection: close\r\n\r\n")
    return b"".join(head) + body


class EnvelopeHttpProtocol(HttpToolsProtocol):
    limits: ConnectionLimits | None = None  # set on the public API's subclass (limited_protocol)
    _head_timer: asyncio.TimerHandle | None = None
    _in_head = False  # a request head has begun and is not complete yet
    _counted = False

    def _default_headers(self) -> list[bytes]:
        return [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]

    def send_400_response(self, msg: str) -> None:
        message = (
            "The request could not be read: malformed HTTP, or a URL "
            "or headers over 80 KiB (KV keys are at most 512 bytes)."
        )
        self.transport.write(_envelope(400, UNPARSABLE_CODE, message, self._default_headers()))
        self.transport.close()

    # -- connection limits and the request-head deadline (public API only) ----------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        if limits is None:
            return
        host = self.client[0] if self.client else None
        if not limits.admit(host, transport):
            message = (
                f"This client address already has {limits.per_address} connections open to the "
                "API (--connections-per-address); close some and retry."
            )
            extra = [*self._default_headers(), b"retry-after: 1\r\n"]
            transport.write(_envelope(429, RATE_LIMITED_CODE, message, extra))
            transport.close()
            return
        self._counted = True
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._counted and self.limits is not None:
            self.limits.release(self.client[0] if self.client else None, self.transport)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        if self.limits is not None and self.limits.head_timeout > 0:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits behind a response still being sent: its clock starts then.
            self._arm_head_timer()
            return
        if not self._in_head:
            self.transport.close()  # connected, sent nothing: nothing to answer
            return
        assert self.limits is not None
        message = (
            f"The request head (request line and headers) did not arrive within "
            f"{self.limits.head_timeout:g} s (--request-head-timeout)."
        )
        self.transport.write(_envelope(408, UNPARSABLE_CODE, message, self._default_headers()))
        self.transport.close()


def limited_protocol(limits: ConnectionLimits) -> type[EnvelopeHttpProtocol]:
    """EnvelopeHttpProtocol holding its connections to `limits` (one per server: its counts)."""
    return type("LimitedEnvelopeHttpProtocol", (EnvelopeHttpProtocol,), {"limits": limits})
