"""A fake workerd that speaks the CLI the supervisor uses and misbehaves on request.

    little_workerd.py [--crash-after S] [--wedge-after S] [--stall-after S] [--ignore-sigterm]
                      [--drain S]
                      [--grow-mb N] [--no-ack] [--record FILE] [--running VERSION] [--fatal]
                      serve CONFIG --experimental
                      --socket-fd http=FD --socket-fd admin=FD --control-fd FD

It reports `listen` on the control fd, answers every request on the http socket with
"fake workerd", and /health and /invalidate on the admin socket, like the dispatcher.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crash-after", type=float)
    parser.add_argument("--wedge-after", type=float)
    parser.add_argument("--stall-after", type=float)
    # Marks a request of VERSION as running (as the dispatcher does), and, with --fatal, says what
    # workerd says when V8 aborts, before --crash-after.
    parser.add_argument("--running")
    parser.add_argument("--fatal", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--drain", type=float, default=0.0)
    parser.add_argument("--grow-mb", type=int, default=0)
    parser.add_argument("--no-ack", action="store_true")
    parser.add_argument("--record")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("config")
    parser.add_argument("--experimental", action="store_true")
    parser.add_argument("--socket-fd", action="append", default=[])
    parser.add_argument("--control-fd", type=int, required=True)
    return parser.parse_args(argv)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return method, target, body


def answer(writer: asyncio.StreamWriter, status: int, body: bytes, kind: str) -> None:
    writer.write(
        f"HTTP/1.1 {status} OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )


def spin() -> None:
    while True:
        pass


def main() -> None:
    args = parse(sys.argv[1:])
    if args.ignore_sigterm:
        # Says so on stdout (the shard's output): the witness that it was asked to drain.
        signal.signal(signal.SIGTERM, lambda *_: os.write(1, b"ignoring SIGTERM\n"))
    fds = dict(item.split("=") for item in args.socket_fd)
    ballast: list[bytearray] = []

    serving: set[asyncio.Task[None] | None] = set()

    async def web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        serving.add(me)
        try:
            await read_request(reader)
            answer(writer, 200, f"fake workerd {os.getpid()}".encode(), "text/plain")
            await writer.drain()
        finally:
            writer.close()
            serving.discard(me)

    async def admin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _, target, body = await read_request(reader)
            if target == "/invalidate":
                if args.no_ack:
                    await asyncio.sleep(3600)
                if args.record:
                    with open(args.record, "a") as record:
                        record.write(body.decode() + "\n")
            answer(writer, 200, json.dumps({"ok": True}).encode(), "application/json")
            await writer.drain()
        finally:
            writer.close()

    async def serve() -> None:
        servers = [
            await asyncio.start_server(web, sock=socket.socket(fileno=int(fds["http"]))),
            await asyncio.start_server(admin, sock=socket.socket(fileno=int(fds["admin"]))),
        ]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if not args.ignore_sigterm:
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        for name in ("http", "admin"):
            event = {"event": "listen", "socket": name, "port": 0}
            os.write(args.control_fd, (json.dumps(event) + "\n").encode())
        if args.grow_mb:
            ballast.append(bytearray(os.urandom(1024)) * (args.grow_mb * 1024))
        mark = os.environ.get("MAYFLY_SHARD_MARK")
        if args.running and mark:
            print(f"{mark} + 1 {args.running}", flush=True)
        if args.fatal:
            print("fatal: V8 fatal error; message = Reached heap limit", flush=True)
        if args.crash_after is not None:
            loop.call_later(args.crash_after, os._exit, 3)
        if args.wedge_after is not None:
            # Like a tenant's endless loop: the event loop stops turning, SIGTERM included.
            loop.call_later(args.wedge_after, spin)
        if args.stall_after is not None:
            # Stuck without burning CPU, like a process the host gives no CPU to.
            loop.call_later(args.stall_after, time.sleep, 3600)
        await stop.wait()
        # Stop accepting, but close the servers only after the drain: asyncio hands a connection
        # accepted just before Server.close() to a task that then fails (Server._attach asserts
        # the server is open) and drops it, a reset workerd never gives.
        for server in servers:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        await asyncio.sleep(args.drain)
        # Like workerd, finish the requests it accepted before it stopped accepting (on a loaded
        # machine some are still being answered when the drain time is up).
        deadline = time.monotonic() + 5.0
        while serving and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for server in servers:
            server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
