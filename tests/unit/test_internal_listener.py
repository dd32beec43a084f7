"""The internal API's listener: answers are not held back by Nagle's algorithm."""

from __future__ import annotations

import socket

from mayfly.app import _bind


def test_connections_to_the_internal_listener_send_without_delay() -> None:
    """asyncio sets TCP_NODELAY only on sockets created with proto TCP; `_bind`'s has proto 0, so
    it sets the option on the listener, which accepted connections inherit. Without it a keep-alive
    client (workerd) waited ~40 ms for every answer's body (delayed ACK)."""
    listener = _bind("127.0.0.1", 0)
    try:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        listener.close()
