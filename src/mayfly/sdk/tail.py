"""Live logs: a tail session (W22/W23) and its WebSocket (spec §5.12).

The session's URL is its only credential. The client offers the `trace-v1` subprotocol, sends
`{"debug": false}` once, then receives one JSON trace item per text frame: outcome, scriptName,
logs [{level, message[], timestamp}], exceptions [{name, message}], eventTimestamp, event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidHandshake

from mayfly import __version__
from mayfly.sdk.errors import MayflyAPIError, SDKError
from mayfly.sdk.worker_models import TailInfo

if TYPE_CHECKING:
    from mayfly.sdk.client import MayflyClient

SUBPROTOCOL = "trace-v1"
MALFORMED = 0
# --status values → the outcomes they stand for (as wrangler sends them).
STATUS_OUTCOMES = {
    "ok": ["ok"],
    "error": ["exception", "exceededCpu", "exceededMemory", "unknown"],
    "canceled": ["canceled"],
}


class TailError(SDKError):
    code = "tail_failed"


class TailConnection(Protocol):
    """What the tail needs from a WebSocket (websockets' sync ClientConnection has it)."""

    def send(self, message: str) -> None: ...

    def recv(self, timeout: float | None = None) -> str | bytes: ...

    def close(self) -> None: ...


Opener = Callable[[str], TailConnection]


def open_websocket(url: str) -> TailConnection:
    from websockets.sync.client import connect

    try:
        connection: TailConnection = connect(
            url,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            user_agent_header=f"mayfly/{__version__}",
            open_timeout=10,
            max_size=8 * 1024 * 1024,
        )
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise TailError(f"Could not connect to the tail at {_redact(url)}: {exc}") from exc
    return connection


def filters(
    statuses: tuple[str, ...] = (),
    methods: tuple[str, ...] = (),
    search: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> list[dict[str, Any]]:
    """wrangler's filter objects, one per option (spec §5.12)."""
    out: list[dict[str, Any]] = []
    if statuses:
        outcomes = [o for status in statuses for o in STATUS_OUTCOMES[status]]
        out.append({"outcome": list(dict.fromkeys(outcomes))})
    if methods:
        out.append({"method": [m.upper() for m in methods]})
    for key, query in headers:
        out.append({"header": {"key": key, "query": query}})
    if search:
        out.append({"query": search})
    return out


class TailsAPI:
    def __init__(self, client: MayflyClient) -> None:
        self.client = client

    def create(
        self, account_id: str, script: str, filters: list[dict[str, Any]] | None = None
    ) -> TailInfo:
        """W22 (10007 when the Worker does not exist)."""
        result = self.client.call(
            "POST",
            f"/accounts/{account_id}/workers/scripts/{script}/tails",
            json={"filters": filters or []},
        )
        if not isinstance(result, dict) or not isinstance(result.get("url"), str):
            raise MayflyAPIError(MALFORMED, "The tail session has no URL.", 200)
        expires = result.get("expires_at")
        return TailInfo(
            str(result.get("id", "")), result["url"], expires if isinstance(expires, str) else None
        )

    def delete(self, account_id: str, script: str, tail_id: str) -> None:
        """W23."""
        self.client.call(
            "DELETE", f"/accounts/{account_id}/workers/scripts/{script}/tails/{tail_id}"
        )


def events(
    connection: TailConnection,
    *,
    max_events: int | None = None,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[dict[str, Any]]:
    """The trace items as they arrive; stops after `max_events`, after `timeout` seconds, or when
    the server closes the socket normally. An abnormal close raises TailError."""
    connection.send(json.dumps({"debug": False}))
    deadline = None if timeout is None else clock() + timeout
    count = 0
    while max_events is None or count < max_events:
        wait = None if deadline is None else deadline - clock()
        if wait is not None and wait <= 0:
            return
        try:
            message = connection.recv(timeout=wait)
        except TimeoutError:
            return
        except ConnectionClosedOK:
            return
        except ConnectionClosedError as exc:
            raise TailError(f"The tail connection closed unexpectedly: {exc}") from exc
        try:
            event = json.loads(message)
        except ValueError:
            continue  # not a trace item; nothing to show
        if isinstance(event, dict):
            count += 1
            yield event


def _redact(url: str) -> str:
    """The URL without its token (it is the session's credential)."""
    head, _, _ = url.rpartition("/")
    return head + "/…"
