"""What Mayfly serves, through the real CLI and data plane: a Hono app using its cache middleware
answers 200 (the Cache API is a workers.dev no-op), and `mayfly deploy` of a project that uses a
feature Mayfly does not serve exits non-zero with 10021 naming it, leaving the deployed version
serving."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from mayfly import surface
from tests.e2e.conftest import ROOT, Agent, Server, write_project

pytestmark = pytest.mark.e2e

HONO_APP = """
import { Hono } from "hono";
import { cache } from "hono/cache";

const app = new Hono();
app.get("*", cache({ cacheName: "mayfly-test", cacheControl: "max-age=60" }));
app.get("/", (c) => c.text("cached hono"));
export default app;
"""


def first_200(server: Server, url: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = server.get_worker(url)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_a_hono_app_with_its_cache_middleware_answers_200(
    agent: Agent, server: Server, tmp_path: Path
) -> None:
    project = tmp_path / "hono-cache"
    (project / "src").mkdir(parents=True)
    (project / "node_modules").symlink_to(ROOT / "node_modules")
    (project / "wrangler.toml").write_text(
        'name = "hono-cache"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n'
    )
    (project / "src" / "index.js").write_text(HONO_APP)
    run = agent.run("deploy", "--temporary", "--json", cwd=project)
    assert run.exit_code == 0, run
    url = run.json()["url"]
    for _ in range(3):  # a miss, a put, and a miss again: never an exception
        response = first_200(server, url)
        assert (response.status_code, response.text) == (200, "cached hono"), response.text
        assert response.headers["cache-control"] == "max-age=60"


REFUSED_CONFIG = {
    "durable_objects": '[[durable_objects.bindings]]\nname = "COUNTER"\nclass_name = "Counter"\n',
    "queues": '[[queues.producers]]\nbinding = "JOBS"\nqueue = "jobs"\n',
    "routes": 'routes = ["example.com/*"]\n',
    "ai": '[ai]\nbinding = "AI"\n',
}


@pytest.mark.parametrize("key", sorted(REFUSED_CONFIG))
def test_mayfly_deploy_refuses_what_mayfly_does_not_serve(
    agent: Agent, server: Server, tmp_path: Path, key: str
) -> None:
    name = f"refused-{key.replace('_', '-')}"
    project = write_project(tmp_path / name, name, message="first")
    run = agent.run("deploy", "--temporary", "--json", cwd=project)
    assert run.exit_code == 0, run
    url = run.json()["url"]
    assert first_200(server, url).text == f"first {name}"

    config = project / "wrangler.toml"
    text = config.read_text().replace('GREETING = "first"', 'GREETING = "second"')
    # Top-level keys go before the first table.
    head, _, tables = text.partition("[vars]")
    config.write_text(
        f"{REFUSED_CONFIG[key]}\n{head}[vars]{tables}"
        if key == "routes"
        else f"{text}\n{REFUSED_CONFIG[key]}"
    )
    refused = agent.run("deploy", "--temporary", "--json", cwd=project)
    assert refused.exit_code != 0, refused
    error = refused.json()["error"]
    assert error["code"] == 10021, refused
    assert surface.REFUSED_CONFIG_KEYS[key].feature in error["message"]
    assert server.get_worker(url).text == f"first {name}", "the deployed version still serves"


def test_mayfly_deploy_serves_a_service_worker_script(
    agent: Agent, server: Server, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "sw", "sw", message="hi")
    (project / "src" / "index.js").write_text(
        'addEventListener("fetch", (event) => {\n'
        '  event.respondWith(new Response("service worker says " + GREETING));\n'
        "});\n"
    )
    run = agent.run("deploy", "--temporary", "--json", cwd=project)
    assert run.exit_code == 0, run
    response = first_200(server, run.json()["url"])
    assert (response.status_code, response.text) == (200, "service worker says hi")
