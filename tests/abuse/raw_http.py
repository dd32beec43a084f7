"""Raw HTTP/1.1 against a real `mayfly serve`: huge bodies streamed without holding them, with
or without Content-Length, and the server's memory read from /proc."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mayfly.services.temporary import pow
from tests import pow_solver

MB = 1024 * 1024
CHUNK = b"A" * MB


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def _parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return Answer(status, body)


def megabytes(count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield CHUNK


def send(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Iterable[bytes],
    *,
    length: int | None = None,
) -> Answer:
    """Stream `body` (chunked when `length` is None) while reading the answer; stops sending as
    soon as the server has answered, as a client would."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    received = bytearray()
    answered = threading.Event()

    def read() -> None:
        try:
            while not _complete(bytes(received)):
                data = sock.recv(65536)
                if not data:
                    break
                received.extend(data)
        except OSError:
            pass
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for chunk in body:
            if answered.is_set():
                break
            if length is None:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                sock.sendall(chunk)
        if length is None and not answered.is_set():
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed: the answer is what matters
    reader.join(timeout=120)
    sock.close()
    assert received, "no answer"
    return _parse(bytes(received))


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def provision(api_url: str) -> dict[str, Any]:
    with httpx.Client(base_url=api_url + "/client/v4/", timeout=60) as client:
        challenge = client.post("provisioning/previews/challenge", content="{}").json()["result"]
        seed = pow.b64url_decode(challenge["seed"])
        solution = base64.b64encode(pow_solver.solve(seed, challenge["k"], challenge["g"])).decode()
        created = client.post(
            "provisioning/previews",
            json={
                "acceptTermsOfService": "yes",
                "challengeToken": challenge["challengeToken"],
                "solution": {"checkpoints": solution},
            },
        )
        assert created.status_code == 200, created.text
        account: dict[str, Any] = created.json()["result"]["account"]
        return account
