"""A real `mayfly serve` (API only) on free ports, for tests that need a real peer address, real
uvicorn proxy handling or real argon2 under load."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mayfly.services.temporary import pow
from tests import pow_solver
from tests.serve import ServeProcess, serving


class LiveServer(ServeProcess):
    def provision(self) -> dict[str, Any]:
        """A temporary account: {"id", "name", "apiToken", …}."""
        with httpx.Client(base_url=self.api_url + "/client/v4/", timeout=30) as client:
            challenge = client.post("provisioning/previews/challenge", content="{}").json()
            challenge = challenge["result"]
            seed = pow.b64url_decode(challenge["seed"])
            solution = base64.b64encode(
                pow_solver.solve(seed, challenge["k"], challenge["g"])
            ).decode()
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
    defaults = ["--pow-k", "20", "--pow-g", "100", "--runtime", "false", "--log-level", "warning"]
    with serving(LiveServer, directory, *defaults, *flags) as server:
        yield server
