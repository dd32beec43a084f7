"""W22/W23 and the tail WebSocket (spec §5.12): the URL is the credential, subprotocol trace-v1."""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mayfly.api.auth import account_access, in_account, in_thread, services
from mayfly.api.envelope import json_body, ok
from mayfly.api.openapi import ANY_OBJECT, STRING, TIMESTAMP, array, obj, operation
from mayfly.errors import NotFound
from mayfly.model import Account, Principal, iso
from mayfly.services.workers.tail import TailSession


@operation(
    "POST",
    "Start a tail: a WebSocket URL (subprotocol trace-v1) that is its own credential",
    operation_id="worker-tail-logs-start-tail",
    tag="Workers",
    body={"application/json": obj({"filters": array(ANY_OBJECT)})},
    result=obj({"id": STRING, "url": STRING, "expires_at": TIMESTAMP}, "id", "url"),
)
async def create_tail(request: Request) -> Response:
    svc = services(request)
    script = request.path_params["script"]

    def existing(_: Principal, account: Account) -> Account:
        svc.scripts.current(account, script)  # 10007 when missing
        return account

    account = await in_account(request, existing)
    body = await json_body(request)
    session = await svc.tails.open(account, script, body.get("filters"))
    base = svc.ctx.settings.public_url
    ws_base = (
        "wss://" + base[len("https://") :]
        if base.startswith("https://")
        else ("ws://" + base[len("http://") :])
    )
    return ok(
        {
            "id": session.id,
            "url": f"{ws_base}/tail/{session.token}",
            "expires_at": iso(session.expires_at),
        }
    )


@operation("DELETE", "Stop a tail", operation_id="worker-tail-logs-delete-tail", tag="Workers")
async def delete_tail(request: Request) -> Response:
    _, account = await account_access(request)
    closed = await services(request).tails.close(account, request.path_params["tail_id"])
    if not closed:
        raise NotFound("No such tail on this account.")
    return ok(None)


async def tail_socket(websocket: WebSocket) -> None:
    svc = websocket.app.state.services
    token, now = websocket.path_params["token"], svc.ctx.clock.now()
    session = svc.tails.hub.by_token(token, now)
    if session is None:  # with replicas: a session opened on another one moves here
        session = await in_thread(lambda: svc.tails.hub.adopt(token, now))
    if session is None or session.connected:
        await websocket.close(code=1008)
        return
    session.connected = True
    try:
        wants = websocket.headers.get("sec-websocket-protocol", "")
        subprotocol = "trace-v1" if "trace-v1" in [p.strip() for p in wants.split(",")] else None
        await websocket.accept(subprotocol=subprotocol)
        await _stream(websocket, session)
    finally:
        # However the socket ended (client gone, killed `wrangler tail`, error, DELETE, sweep),
        # the session ends with it, so the Worker stops producing events nobody reads.
        await svc.tails.end(session)


async def _stream(websocket: WebSocket, session: TailSession) -> None:
    async def drain_client() -> None:
        # The client sends {"debug": …} once; reading also notices the disconnect.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    reader = asyncio.create_task(drain_client())
    ended = asyncio.create_task(session.closed.wait())
    try:
        while not reader.done() and not ended.done():
            getter = asyncio.create_task(session.queue.get())
            done, _ = await asyncio.wait(
                {getter, reader, ended}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                break
            await websocket.send_text(json.dumps(getter.result()))
        if ended.done() and not reader.done():
            await websocket.close(code=1000)  # closed by DELETE, expiry or the account's end
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        for task in (reader, ended):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


S = "/accounts/{account_id}/workers/scripts/{script}"
routes = [
    Route(S + "/tails", create_tail, methods=["POST"]),
    Route(S + "/tails/{tail_id}", delete_tail, methods=["DELETE"]),
]
socket_routes = [WebSocketRoute("/tail/{token}", tail_socket)]
