"""Service bindings in real workerd shards: fetch() and JS RPC to a WorkerEntrypoint of another
Worker of the same account, entrypoint selection, the target's current deploy, and refusals of a
binding to a Worker the account does not have."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import auth, upload_body
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

BACKEND = """
import { WorkerEntrypoint } from "cloudflare:workers";
export class Api extends WorkerEntrypoint {
  async add(a, b) { return a + b + VERSION_BUMP; }
  async fetch(request) { return new Response("api entrypoint " + new URL(request.url).pathname); }
  async whoami() { return Object.keys(this.env); }
  async props() { return this.ctx.props; }
}
export const Plain = {
  async fetch(request, env, ctx) {
    return new Response("plain entrypoint " + typeof ctx.waitUntil + " " + JSON.stringify(ctx.props));
  },
};
export default {
  async fetch(request, env) {
    return new Response(`backend ${VERSION} ${request.method} ${new URL(request.url).pathname} ` +
      (request.headers.get("x-test") ?? ""));
  },
};
"""

FRONTEND = """
export default {
  async fetch(request, env) {
    const { scenario } = await request.json();
    try {
      if (scenario === "fetch") {
        const r = await env.BACK.fetch("https://backend/path", { method: "POST", headers: { "x-test": "yes" } });
        return Response.json({ value: await r.text() });
      }
      if (scenario === "rpc") return Response.json({ value: await env.API.add(2, 3) });
      if (scenario === "entrypoint-fetch") {
        return Response.json({ value: await (await env.API.fetch("https://x/p")).text() });
      }
      if (scenario === "keys") return Response.json({ value: await env.API.whoami() });
      if (scenario === "props") return Response.json({ value: await env.API.props() });
      if (scenario === "plain") return Response.json({ value: await (await env.PLAIN.fetch("https://x/")).text() });
      if (scenario === "steal") {
        try { return Response.json({ value: String(await env.API.env) }); }
        catch (err) { return Response.json({ value: "refused: " + String(err) }); }
      }
      if (scenario === "missing-method") {
        try { return Response.json({ value: await env.API.nothing() }); }
        catch (err) { return Response.json({ value: "refused: " + String(err) }); }
      }
      if (scenario === "self") return Response.json({ value: await (await env.SELF.fetch("https://s/", { method: "POST", body: "{}" })).text() });
    } catch (err) {
      return Response.json({ error: String(err) });
    }
    return Response.json({ value: "frontend itself" });
  },
};
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path_factory.mktemp("services")))
    yield live
    live.close()


def backend(version: str, bump: int = 0) -> str:
    return f"const VERSION = {json.dumps(version)}; const VERSION_BUMP = {bump};\n" + BACKEND


BINDINGS = [
    {"type": "service", "name": "BACK", "service": "backend"},
    {"type": "service", "name": "API", "service": "backend", "entrypoint": "Api"},
    {"type": "service", "name": "SELF", "service": "frontend"},
    {"type": "service", "name": "PLAIN", "service": "backend", "entrypoint": "Plain"},
]


@pytest.fixture(scope="module")
def account(live: LivePlatform) -> dict[str, Any]:
    account = live.provision()
    live.deploy(
        account,
        "backend",
        backend("v1"),
        bindings=[{"type": "plain_text", "name": "X", "text": "1"}],
    )
    live.deploy(account, "frontend", FRONTEND, bindings=BINDINGS)
    return account


def call(live: LivePlatform, account: dict[str, Any], scenario: str) -> Any:
    with httpx.Client(timeout=30) as client:
        response = client.post(
            f"http://127.0.0.1:{live.port}/",
            headers={"host": live.host(account, "frontend")},
            content=json.dumps({"scenario": scenario}),
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "error" not in answer, answer
    return answer["value"]


def test_fetch_reaches_the_default_entrypoint(live: LivePlatform, account: dict[str, Any]) -> None:
    assert call(live, account, "fetch") == "backend v1 POST /path yes"


def test_rpc_to_a_named_entrypoint(live: LivePlatform, account: dict[str, Any]) -> None:
    assert call(live, account, "rpc") == 5
    assert call(live, account, "entrypoint-fetch") == "api entrypoint /p"
    assert call(live, account, "keys") == ["X"]  # the target's own env
    # Reached through the wrapper (tenant.js: entrypoint), which leaves the tenant no props.
    assert call(live, account, "props") == {}
    assert call(live, account, "plain") == "plain entrypoint function {}"


def test_the_binding_hands_out_nothing_of_the_platform(
    live: LivePlatform, account: dict[str, Any]
) -> None:
    assert call(live, account, "steal").startswith("refused")
    assert call(live, account, "missing-method").startswith("refused")


def test_a_worker_may_bind_itself(live: LivePlatform, account: dict[str, Any]) -> None:
    assert call(live, account, "self") == json.dumps(
        {"value": "frontend itself"}, separators=(",", ":")
    )


def test_calls_reach_the_targets_current_deploy(
    live: LivePlatform, account: dict[str, Any]
) -> None:
    live.deploy(account, "backend", backend("v2", bump=10))
    assert call(live, account, "fetch").startswith("backend v2 ")
    assert call(live, account, "rpc") == 15


def test_a_binding_to_a_worker_the_account_does_not_have_is_refused(
    live: LivePlatform, account: dict[str, Any]
) -> None:
    other = live.provision()
    for target in ("backend", "no-such-worker"):  # another account's Worker, and none at all
        response = live.api.put(
            f"accounts/{other['id']}/workers/scripts/thief",
            headers=auth(other["apiToken"]),
            **upload_body(
                modules={"index.js": (FRONTEND.encode(), "application/javascript+module")},
                bindings=[{"type": "service", "name": "BACK", "service": target}],
            ),
        )
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["code"] == 10021 and "not a Worker of this account" in error["message"]


LOOP = """
export default {
  async fetch(request, env) {
    const depth = Number(new URL(request.url).searchParams.get("depth") ?? "0");
    if (depth >= 40) return new Response("bottom");
    // A Worker calling itself through its own binding, deeper each time.
    const next = await env.SELF.fetch(`https://loop/?depth=${depth + 1}`);
    return new Response(await next.text());
  },
};
"""


def test_a_worker_calling_itself_runs_under_the_callers_limits(
    live: LivePlatform, account: dict[str, Any]
) -> None:
    """40 nested calls through the binding answer; calls that never end are refused once 64 are in
    flight (the Worker's own code sees the error), and the shard keeps serving others."""
    self_binding = [{"type": "service", "name": "SELF", "service": "loop"}]
    live.deploy(account, "loop", LOOP, bindings=self_binding)
    host = live.host(account, "loop")
    with httpx.Client(timeout=60) as client:
        answer = client.get(f"http://127.0.0.1:{live.port}/", headers={"host": host})
        assert (answer.status_code, answer.text) == (200, "bottom")
        live.deploy(account, "loop", LOOP.replace("depth >= 40", "false"), bindings=self_binding)
        endless = client.get(f"http://127.0.0.1:{live.port}/", headers={"host": host})
        assert endless.status_code == 500, endless.text  # the call past the limit throws
    assert call(live, account, "rpc") == 15  # the shard still serves (backend v2 from above)
