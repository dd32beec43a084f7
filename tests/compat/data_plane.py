"""What the compat tests of KV, secrets and tail share: the tests/compat/projects/kv-worker project
in its variants, and requests to a deployed Worker through the data plane of `mayfly serve`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.compat.conftest import MayflyServer, WranglerUser


def kv_worker(new_project: Any, name: str, namespace_id: str | None) -> Path:
    """A copy of kv-worker named `name`: bound to `namespace_id`, or, with None, with a binding
    without an id (wrangler provisions one)."""
    project: Path = new_project("kv-worker", worker_name=name)
    config = project / "wrangler.toml"
    text = config.read_text()
    if namespace_id is None:
        text = re.sub(r'(?m)^id = "NAMESPACE_ID"\n', "", text)
    else:
        text = text.replace("NAMESPACE_ID", namespace_id)
    config.write_text(text)
    return project


def plain_worker(new_project: Any, name: str) -> Path:
    """A copy of kv-worker named `name`, without its KV binding."""
    project: Path = new_project("kv-worker", worker_name=name)
    config = project / "wrangler.toml"
    config.write_text(config.read_text().split("[[kv_namespaces]]")[0])
    return project


def temporary_account_name(user: WranglerUser) -> str:
    name: str = user.temporary_account()["account"]["name"]
    return name


def request_worker(
    server: MayflyServer, account_name: str, script: str, path: str, **params: str
) -> httpx.Response:
    """GET `path` of the Worker `script` of an account, through the data plane."""
    with httpx.Client(timeout=30) as client:
        return client.get(
            f"http://127.0.0.1:{server.workers_port}{path}",
            params=params,
            headers={"host": f"{script}.{account_name}.localhost"},
        )
