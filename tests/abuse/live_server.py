"""A real `mayfly serve` (API only) on free ports, for tests that need a real peer address, real
uvicorn proxy handling or real argon2 under load."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mayfly.services.temporary import pow
from tests.e2e.conftest import MAYFLY, clean_environment, free_port


@dataclass
class LiveServer:
    api_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def provision(self) -> dict[str, Any]:
        """A temporary account: {"id", "name", "apiToken", …}."""
        with httpx.Client(base_url=self.api_url + "/client/v4/", timeout=30) as client:
            challenge = client.post("provisioning/previews/challenge", content="{}").json()
            challenge = challenge["result"]
            seed = pow.b64url_decode(challenge["seed"])
            solution = base64.b64encode(pow.solve(seed, challenge["k"], challenge["g"])).decode()
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


@contextmanager
def live_server(directory: Path, *flags: str) -> Iterator[LiveServer]:
    directory.mkdir(parents=True, exist_ok=True)
    api_port = free_port()
    log_path = directory / "server.log"
    args = [
        str(MAYFLY),
        "serve",
        "--api-port",
        str(api_port),
        "--workers-port",
        str(free_port()),
        "--data-dir",
        str(directory / "data"),
        "--pow-k",
        "20",
        "--pow-g",
        "100",
        "--runtime",
        "false",
        "--log-level",
        "warning",
        *flags,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=clean_environment(), cwd=directory
        )
    server = LiveServer(f"http://127.0.0.1:{api_port}", log_path, process)
    try:
        _wait_until_ready(server, 60.0)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_ready(server: LiveServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"mayfly serve exited:\n{server.log()}")
            try:
                if client.get(server.api_url + "/").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"mayfly serve did not answer within {timeout} s:\n{server.log()}")
