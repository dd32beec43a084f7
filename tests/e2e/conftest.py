"""End to end: a real `mayfly serve` subprocess on free ports, and the real `mayfly` CLI.

Each CLI run gets its own HOME and XDG_CONFIG_HOME and no ambient MAYFLY_* variables. Workers are
requested on the workers port with a Host header (`*.localhost` does not resolve in Python).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
MAYFLY = ROOT / ".venv" / "bin" / "mayfly"
NODE_BIN = ROOT / "node_modules" / ".bin"

# Serving Workers needs the data plane; until src/mayfly/runtime/dataplane.py exists the tests
# that request a Worker are skipped, and the rest run against an API-only server.
DATA_PLANE = importlib.util.find_spec("mayfly.runtime.dataplane") is not None
needs_data_plane = pytest.mark.skipif(
    not DATA_PLANE, reason="awaits the data plane (src/mayfly/runtime/dataplane.py)"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Server:
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
        """Request a Worker URL on the workers port, with the URL's host in the Host header."""
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
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def running_server(
    directory: Path, *, ttl: int, runtime: bool, pow_k: int = 20, pow_g: int = 100
) -> Iterator[Server]:
    directory.mkdir(parents=True, exist_ok=True)
    api_port, workers_port = free_port(), free_port()
    data_dir, log_path = directory / "data", directory / "server.log"
    args = [
        str(MAYFLY),
        "serve",
        "--api-port",
        str(api_port),
        "--workers-port",
        str(workers_port),
        "--data-dir",
        str(data_dir),
        "--temporary-ttl",
        str(ttl),
        "--pow-k",
        str(pow_k),
        "--pow-g",
        str(pow_g),
        "--runtime",
        "true" if runtime else "false",
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=clean_environment(), cwd=directory
        )
    server = Server(api_port, workers_port, data_dir, log_path, process)
    try:
        _wait_until_ready(server, 60.0)
        yield server
    finally:
        server.stop()


def _wait_until_ready(server: Server, timeout: float) -> None:
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


@dataclass
class Run:
    args: list[str]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    def __str__(self) -> str:
        return (
            f"$ mayfly {' '.join(self.args)}  (exit {self.exit_code})\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


@dataclass
class Agent:
    """One machine's `mayfly` user: a HOME and config dir of its own, pointed at one server."""

    home: Path
    server: Server

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        environment = clean_environment()
        environment.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "MAYFLY_API_URL": self.server.api_url,
                **(env or {}),
            }
        )
        return environment

    def run(
        self,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> Run:
        done = subprocess.run(
            [str(MAYFLY), *args],
            cwd=cwd,
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            input=input,
        )
        return Run(list(args), done.returncode, done.stdout, done.stderr)

    def start(self, *args: str, cwd: Path) -> subprocess.Popen[str]:
        """A long-running command (`mayfly tail`), its output on pipes."""
        return subprocess.Popen(
            [str(MAYFLY), *args],
            cwd=cwd,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def write_project(root: Path, name: str, message: str = "hello from") -> Path:
    """Two ES modules (one in a subfolder) and a var."""
    (root / "src" / "lib").mkdir(parents=True, exist_ok=True)
    (root / "wrangler.toml").write_text(
        f'name = "{name}"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n\n'
        f'[vars]\nGREETING = "{message}"\n'
    )
    (root / "src" / "index.js").write_text(
        'import { render } from "./lib/render.js";\n'
        "export default {\n"
        "  async fetch(request, env) { return new Response(render(env.GREETING)); },\n"
        "};\n"
    )
    (root / "src" / "lib" / "render.js").write_text(
        f"export const render = (greeting) => `${{greeting}} {name}`;\n"
    )
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server"), ttl=600, runtime=DATA_PLANE) as running:
        yield running


@pytest.fixture
def agent(server: Server, tmp_path: Path) -> Agent:
    return Agent(tmp_path / "home", server)
