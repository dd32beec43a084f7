"""uvicorn's sans-io WebSocket protocol, tolerant of clients that do not mask their frames.

wrangler 4.164.0 sends its first tail message (`{"debug": false}`) with `mask: false`. RFC 6455
says a server must close on an unmasked client frame, and websockets does (1002, "incorrect
masking"), so `wrangler tail` would reconnect forever; Cloudflare accepts such frames. Masking
protects proxies from cache poisoning by browser scripts, which cannot send unmasked frames
anyway. Incoming frames that arrive unmasked get a zero mask key (XOR with zeros changes nothing)
before the parser sees them.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_END_OF_HANDSHAKE = b"\r\n\r\n"
_MASK_BIT = 0x80
_ZERO_MASK = b"\0\0\0\0"


class MaskingFrames:
    """Rewrites a client's byte stream (upgrade request, then frames) so every frame is masked."""

    def __init__(self) -> None:
        self._in_handshake = True
        self._recent = b""  # the handshake's last bytes, to find its end across chunks
        self._header = b""  # an incomplete frame header
        self._payload_left = 0

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        if self._in_handshake:
            seen = self._recent + data
            end = seen.find(_END_OF_HANDSHAKE)
            if end < 0:
                self._recent = seen[-(len(_END_OF_HANDSHAKE) - 1) :]
                return data
            split = end + len(_END_OF_HANDSHAKE) - len(self._recent)
            out.append(data[:split])
            data = data[split:]
            self._in_handshake = False
        while data:
            if self._payload_left:
                chunk = data[: self._payload_left]
                out.append(chunk)
                self._payload_left -= len(chunk)
                data = data[len(chunk) :]
                continue
            self._header += data
            data = b""
            frame = self._take_header()
            if frame is None:
                break
            out.append(frame)
            data, self._header = self._header, b""
        return b"".join(out)

    def _take_header(self) -> bytes | None:
        """A complete header from self._header (masked), leaving what follows it there."""
        header = self._header
        if len(header) < 2:
            return None
        masked = bool(header[1] & _MASK_BIT)
        code = header[1] & 0x7F
        extended = {126: 2, 127: 8}.get(code, 0)
        size = 2 + extended + (4 if masked else 0)
        if len(header) < size:
            return None
        length = int.from_bytes(header[2 : 2 + extended], "big") if extended else code
        self._payload_left = length
        self._header = header[size:]
        if masked:
            return header[:size]
        return bytes([header[0], header[1] | _MASK_BIT]) + header[2:size] + _ZERO_MASK


class TolerantWebSocketProtocol(WebSocketsSansIOProtocol):
    """Pass as uvicorn's `ws=`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._masking = MaskingFrames()

    def data_received(self, data: bytes) -> None:
        rewritten = self._masking.feed(data)
        if rewritten:
            super().data_received(rewritten)
