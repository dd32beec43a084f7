"""End to end: a real `mayfly serve` subprocess on free ports, and the real `mayfly` CLI.

Each CLI run gets its own HOME and XDG_CONFIG_HOME and no ambient MAYFLY_* variables. Workers are
requested on the workers port with a Host header (`*.localhost` does not resolve in Python).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serve import MAYFLY, NODE_BIN, ROOT, ServeProcess, free_port, serving
from tests.serve import server_environment as clean_environment

__all__ = ["MAYFLY", "NODE_BIN", "ROOT", "Agent", "Run", "Server", "clean_environment", "free_port"]


class Server(ServeProcess):
    """A `mayfly serve` for the CLI to talk to (tests/serve.py)."""


@contextmanager
def running_server(
    directory: Path, *, ttl: int, runtime: bool, pow_k: int = 20, pow_g: int = 100
) -> Iterator[Server]:
    flags = ["--temporary-ttl", str(ttl), "--pow-k", str(pow_k), "--pow-g", str(pow_g)]
    flags += ["--runtime", "true" if runtime else "false", "--log-level", "warning"]
    with serving(Server, directory, *flags) as server:
        yield server


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
    with running_server(tmp_path_factory.mktemp("server"), ttl=600, runtime=True) as running:
        yield running


@pytest.fixture
def agent(server: Server, tmp_path: Path) -> Agent:
    return Agent(tmp_path / "home", server)
