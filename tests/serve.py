"""A real `mayfly serve` subprocess on free ports, stopped afterwards: the one way the e2e, compat,
abuse and browser suites (and bench/) start a server. Its environment has no MAYFLY_* variables, so
only the flags given apply, and node_modules/.bin first on PATH (node, esbuild, workerd)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAYFLY = ROOT / ".venv" / "bin" / "mayfly"
NODE_BIN = ROOT / "node_modules" / ".bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment() -> dict[str, str]:
    """The parent environment without MAYFLY_* settings, node_modules/.bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class ServeProcess:
    """A running `mayfly serve`; the suites subclass it with their own helpers."""

    api_port: int
    workers_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get_worker(self, url: str, path: str = "/", **headers: str) -> httpx.Response:
        """Request a Worker URL on the workers port, with the URL's host in the Host header
        (`*.localhost` does not resolve in Python)."""
        parts = urlsplit(url)
        with httpx.Client(timeout=30) as client:
            return client.get(
                f"http://127.0.0.1:{self.workers_port}{path}",
                headers={"host": parts.netloc, **headers},
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


S = TypeVar("S", bound=ServeProcess)


def start(
    kind: type[S],
    directory: Path,
    *flags: str,
    api_port: int | None = None,
    workers_port: int | None = None,
    stdout_to_log: bool = True,
) -> S:
    """Start `mayfly serve --api-port … --workers-port … --data-dir DIRECTORY/data FLAGS…` with its
    output in DIRECTORY/server.log (stderr only with stdout_to_log=False: the banner is dropped)."""
    directory.mkdir(parents=True, exist_ok=True)
    api_port = api_port or free_port()
    workers_port = workers_port or free_port()
    data_dir, log_path = directory / "data", directory / "server.log"
    args = [str(MAYFLY), "serve", "--api-port", str(api_port), "--workers-port", str(workers_port)]
    args += ["--data-dir", str(data_dir), *flags]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            stdout=log if stdout_to_log else subprocess.DEVNULL,
            stderr=log,
            env=server_environment(),
            cwd=directory,
        )
    return kind(api_port, workers_port, data_dir, log_path, process)


def wait_until_ready(server: ServeProcess, timeout: float = 60.0) -> None:
    """Until GET / answers (raises with the server's log if it exits or does not answer)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"mayfly serve exited with {server.process.returncode}:\n{server.log()}"
                )
            try:
                if client.get(server.api_url + "/").status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling a port that is not listening yet: there is no event
    raise RuntimeError(f"mayfly serve did not answer within {timeout} s:\n{server.log()}")


@contextmanager
def serving(
    kind: type[S],
    directory: Path,
    *flags: str,
    api_port: int | None = None,
    workers_port: int | None = None,
    stdout_to_log: bool = True,
    timeout: float = 60.0,
) -> Iterator[S]:
    """`start`, wait until it answers, yield it, stop it (SIGTERM, then SIGKILL after 20 s)."""
    server = start(
        kind,
        directory,
        *flags,
        api_port=api_port,
        workers_port=workers_port,
        stdout_to_log=stdout_to_log,
    )
    try:
        wait_until_ready(server, timeout)
        yield server
    finally:
        server.stop()
