"""Wrangler projects and the commands around them, with the real CLI against a real server: the same
scenarios as the wrangler compatibility suite (a TypeScript project with an npm package, KV both
ways, secrets, rollback, tail, static assets, delete).

One server (with its data plane) and one agent (one temporary account) for the module.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, Agent, Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def agent(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Agent:
    return Agent(tmp_path_factory.mktemp("home"), server)


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    return tmp_path


def files(root: Path, tree: dict[str, str]) -> Path:
    for name, text in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


APP = """\
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    console.log("tail-marker " + url.pathname);
    const key = url.searchParams.get("key");
    if (url.pathname === "/kv/get") {
      const value = await env.MYKV.get(key);
      return new Response(value === null ? "(null)" : value);
    }
    if (url.pathname === "/kv/put") {
      await env.MYKV.put(key, url.searchParams.get("value"));
      return new Response("stored");
    }
    if (url.pathname === "/secret") return new Response(String(env.SECRET_X));
    return new Response(LABEL);
  },
};
"""


def app(root: Path, name: str, label: str = "v1", kv: bool = False) -> Path:
    config = f'name = "{name}"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n'
    if kv:
        config += '\n[[kv_namespaces]]\nbinding = "MYKV"\n'
    return files(
        root,
        {"wrangler.toml": config, "src/index.js": f"const LABEL = {label!r};\n" + APP},
    )


def deploy(agent: Agent, project: Path, *args: str) -> dict[str, object]:
    run = agent.run("deploy", "--temporary", "--json", *args, cwd=project)
    assert run.exit_code == 0, run
    result: dict[str, object] = run.json()
    return result


def get(server: Server, url: object, path: str = "/", timeout: float = 15.0) -> httpx.Response:
    """The first non-5xx answer (a new Worker may take a moment on a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        response = server.get_worker(str(url), path)
        if response.status_code < 500 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


# -- TypeScript + npm -----------------------------------------------------------------------


def test_a_typescript_project_with_an_npm_package(
    agent: Agent, server: Server, projects: Path
) -> None:
    project = files(
        projects / "ts",
        {
            "wrangler.jsonc": (
                '{"name": "ts-app", "main": "src/index.ts", "compatibility_date": "2025-01-01"}'
            ),
            "src/index.ts": (
                'import { shout } from "tiny-pkg";\n'
                "interface Env { }\n"
                "export default {\n"
                "  async fetch(request: Request, env: Env): Promise<Response> {\n"
                '    return new Response(shout("typed"));\n'
                "  },\n"
                "} satisfies ExportedHandler<Env>;\n"
            ),
            # A package written by hand: no network.
            "node_modules/tiny-pkg/package.json": json.dumps(
                {"name": "tiny-pkg", "version": "1.0.0", "type": "module", "main": "index.js"}
            ),
            "node_modules/tiny-pkg/index.js": "export const shout = (s) => `${s.toUpperCase()}!`;\n",
        },
    )
    deployed = deploy(agent, project)
    assert deployed["bundled"] == {
        "tool": "esbuild",
        "inputs": ["node_modules/tiny-pkg/index.js", "src/index.ts"],
    }
    response = get(server, deployed["url"])
    assert (response.status_code, response.text) == (200, "TYPED!")


# -- KV -------------------------------------------------------------------------------------


def test_kv_from_the_cli(agent: Agent, projects: Path) -> None:
    project = app(projects / "kv-cli", "kv-cli", kv=True)
    deployed = deploy(agent, project)
    [namespace] = deployed["kv_namespaces"]  # type: ignore[misc]
    assert namespace["title"] == "kv-cli-mykv" and namespace["state"] == "created"
    run = agent.run("kv", "key", "put", "greeting", "hi", "--binding", "MYKV", cwd=project)
    assert run.exit_code == 0, run
    run = agent.run("kv", "key", "get", "greeting", "--namespace-id", namespace["id"], cwd=project)
    assert (run.exit_code, run.stdout) == (0, "hi")
    again = deploy(agent, project)
    assert again["kv_namespaces"] == [{**namespace, "state": "existing"}]


def test_kv_written_by_the_cli_is_read_by_the_worker_and_back(
    agent: Agent, server: Server, projects: Path
) -> None:
    project = app(projects / "kv-app", "kv-app", kv=True)
    deployed = deploy(agent, project)
    run = agent.run(
        "kv", "key", "put", "from-cli", "written by mayfly", "--binding", "MYKV", cwd=project
    )
    assert run.exit_code == 0, run
    response = get(server, deployed["url"], "/kv/get?key=from-cli")
    assert (response.status_code, response.text) == (200, "written by mayfly")

    response = get(server, deployed["url"], "/kv/put?key=from-worker&value=written%20by%20it")
    assert (response.status_code, response.text) == (200, "stored")
    run = agent.run("kv", "key", "get", "from-worker", "--binding", "MYKV", cwd=project)
    assert (run.exit_code, run.stdout) == (0, "written by it")


# -- secrets, rollback, delete --------------------------------------------------------------


def test_a_secret_is_visible_and_survives_a_redeploy(
    agent: Agent, server: Server, projects: Path
) -> None:
    project = app(projects / "secret-app", "secret-app")
    deployed = deploy(agent, project)
    run = agent.run("secret", "put", "SECRET_X", "--json", cwd=project, input="s3cr3t\n")
    assert run.exit_code == 0, run
    assert run.json() == {"script": "secret-app", "name": "SECRET_X", "created_worker": False}
    assert get(server, deployed["url"], "/secret").text == "s3cr3t"

    app(project, "secret-app", label="v2")
    deploy(agent, project)
    assert get(server, deployed["url"]).text == "v2"
    assert get(server, deployed["url"], "/secret").text == "s3cr3t"
    run = agent.run("secret", "list", "--json", cwd=project)
    assert run.json() == [{"name": "SECRET_X", "type": "secret_text"}]
    assert "s3cr3t" not in run.stdout + run.stderr


def test_rollback_serves_the_old_version(agent: Agent, server: Server, projects: Path) -> None:
    project = app(projects / "roll-app", "roll-app", label="first")
    first = deploy(agent, project, "--message", "first")
    app(project, "roll-app", label="second")
    second = deploy(agent, project, "--message", "second")
    assert get(server, first["url"]).text == "second"

    run = agent.run("rollback", "--message", "back", "--json", cwd=project)
    assert run.exit_code == 0, run
    rolled = run.json()
    assert (rolled["version_id"], rolled["previous_version_id"]) == (
        first["version_id"],
        second["version_id"],
    )
    # The deployment returns once every shard dropped the old version.
    assert server.get_worker(str(first["url"])).text == "first"
    run = agent.run("deployments", "status", "--json", cwd=project)
    status = run.json()
    assert status["version"]["id"] == first["version_id"]
    assert (status["source"], status["message"]) == ("Rollback", "back")


def test_delete_makes_the_url_404(agent: Agent, server: Server, projects: Path) -> None:
    project = app(projects / "doomed", "doomed")
    deployed = deploy(agent, project)
    assert get(server, deployed["url"]).status_code == 200
    run = agent.run("delete", "--json", cwd=project)
    assert (run.exit_code, run.json()) == (0, {"script": "doomed", "deleted": True})
    assert server.get_worker(str(deployed["url"])).status_code == 404


# -- tail -----------------------------------------------------------------------------------


def test_tail_receives_the_worker_s_console_log(
    agent: Agent, server: Server, projects: Path
) -> None:
    project = app(projects / "tail-app", "tail-app")
    deployed = deploy(agent, project)
    tail = agent.start("tail", "--max-events", "1", "--json", "--timeout", "30", cwd=project)
    stderr: list[str] = []
    connected = threading.Event()

    def read_stderr() -> None:
        assert tail.stderr is not None
        for line in tail.stderr:
            stderr.append(line)
            if "Connected to" in line:
                connected.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert connected.wait(30), "".join(stderr)
        deadline = time.monotonic() + 30
        while tail.poll() is None and time.monotonic() < deadline:
            server.get_worker(str(deployed["url"]), "/traced")
            time.sleep(0.2)
        stdout = tail.communicate(timeout=10)[0]
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    reader.join(5)
    assert tail.returncode == 0, "".join(stderr)
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    item = json.loads(lines[0])
    assert item["scriptName"] == "tail-app"
    assert item["outcome"] == "ok"
    assert item["logs"][0]["message"] == ["tail-marker /traced"]
    assert item["event"]["request"]["method"] == "GET"
    assert "1 event received." in "".join(stderr)


def test_ctrl_c_stops_the_tail_and_deletes_its_session(
    agent: Agent, server: Server, projects: Path
) -> None:
    project = app(projects / "tail-stop", "tail-stop")
    deploy(agent, project)
    tail = agent.start("tail", "--format", "pretty", cwd=project)
    assert tail.stderr is not None
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "Connected to" not in seen and time.monotonic() < deadline:
            seen += tail.stderr.readline()
        assert "Connected to tail-stop" in seen, seen
        tail.send_signal(signal.SIGINT)
        stdout, stderr = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, stderr
    assert stdout == ""
    assert "Stopping tail…" in stderr
    assert "Could not delete the tail session" not in stderr
    assert "0 events received." in stderr


# -- static assets --------------------------------------------------------------------------


SITE = {
    "wrangler.toml": (
        'name = "site"\ncompatibility_date = "2025-01-01"\n'
        '[assets]\ndirectory = "public"\nnot_found_handling = "404-page"\n'
    ),
    "public/index.html": "<h1>home</h1>\n",
    "public/about.html": "<h1>about</h1>\n",
    "public/404.html": "<h1>not here</h1>\n",
    "public/css/site.css": "body { color: teal }\n",
    "public/drafts/wip.html": "not public\n",
    "public/.assetsignore": "drafts/\n",
}


@pytest.fixture(scope="module")
def site(
    agent: Agent, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, object]]]:
    project = files(tmp_path_factory.mktemp("site"), SITE)
    yield project, deploy(agent, project)


def test_assets_are_not_uploaded_twice(agent: Agent, site: tuple[Path, dict[str, object]]) -> None:
    project, first = site
    assert first["assets"] == {"files": 4, "uploaded": 4, "already_uploaded": 0}
    again = deploy(agent, project)
    assert again["assets"] == {"files": 4, "uploaded": 0, "already_uploaded": 4}
    (project / "public" / "about.html").write_text("<h1>about, changed</h1>\n")
    changed = deploy(agent, project)
    assert changed["assets"] == {"files": 4, "uploaded": 1, "already_uploaded": 3}


def test_assets_are_served(server: Server, site: tuple[Path, dict[str, object]]) -> None:
    _, deployed = site
    url = deployed["url"]
    home = get(server, url, "/")
    assert (home.status_code, home.text) == (200, "<h1>home</h1>\n")
    assert home.headers["content-type"].startswith("text/html")
    css = get(server, url, "/css/site.css")
    assert css.headers["content-type"].startswith("text/css")
    assert get(server, url, "/about").status_code == 200
    missing = get(server, url, "/drafts/wip.html")
    assert (missing.status_code, missing.text) == (404, "<h1>not here</h1>\n")


def test_the_site_example(agent: Agent, server: Server, projects: Path) -> None:
    project = projects / "site-example"
    shutil.copytree(ROOT / "examples" / "site", project)
    deployed = deploy(agent, project)
    url = deployed["url"]
    home = get(server, url, "/")
    assert home.status_code == 200 and "Served from static assets" in home.text
    # public/_headers reaches the server as config text; applying it when serving awaits the
    # control plane parsing it (runtime/assets.js), so it is not asserted here.
    assert get(server, url, "/api/visits").json() == {"visits": 1}
    assert get(server, url, "/api/visits").json() == {"visits": 2}
    run = agent.run("kv", "key", "get", "visits", "--binding", "COUNTER", cwd=project)
    assert (run.exit_code, run.stdout) == (0, "2")
    missing = get(server, url, "/nope")
    assert missing.status_code == 404 and "Not found" in missing.text
