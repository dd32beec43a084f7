"""Two tenants on the same shards cannot see each other's globals, prototypes or env, nor the
platform's bindings and environment."""

from __future__ import annotations

import json

import pytest

from tests.runtime.harness import LivePlatform

pytestmark = pytest.mark.runtime

POLLUTER = """
let hits = 0;
export default {
  async fetch(request, env) {
    hits += 1;
    globalThis.LEAK = env.A_SECRET;
    Object.prototype.polluted = env.A_SECRET;
    Response.prototype.mark = env.A_SECRET;
    Array.prototype.push = function () { return env.A_SECRET; };
    return Response.json({ hits, env: Object.keys(env) });
  },
};
"""

SNOOP = """
import process from "node:process";
export default {
  async fetch(request, env) {
    const globals = Object.getOwnPropertyNames(globalThis);
    const list = [];
    list.push(1);
    return Response.json({
      leak: globalThis.LEAK ?? null,
      polluted: ({}).polluted ?? null,
      mark: new Response("").mark ?? null,
      push: list.length,
      env: Object.keys(env),
      processEnv: Object.keys(process.env),
      internalSecret: process.env.MAYFLY_INTERNAL_SECRET ?? null,
      platformGlobals: globals.filter((g) => /LOADER|CONTROL_PLANE|INTERNAL_SECRET|PUBLIC_NET/.test(g)),
      everything: JSON.stringify(env),
    });
  },
};
"""


def test_tenants_do_not_share_globals_prototypes_or_env(live: LivePlatform) -> None:
    a, b = live.provision(), live.provision()
    secret = "a-secret-value-0f3c"
    live.deploy(
        a,
        "polluter",
        POLLUTER,
        bindings=[
            {"type": "secret_text", "name": "A_SECRET", "text": secret},
            {"type": "plain_text", "name": "A_VAR", "text": "a"},
        ],
    )
    live.deploy(
        b,
        "snoop",
        SNOOP,
        flags=["nodejs_compat"],
        compatibility_date="2025-06-01",  # process.env mirrors env from 2025-04-01
        bindings=[{"type": "plain_text", "name": "B_VAR", "text": "b"}],
    )
    host_a, host_b = live.host(a, "polluter"), live.host(b, "snoop")

    # Many requests of each, so that both land on every shard.
    for _ in range(6):
        assert live.get(host_a).status_code == 200
        response = live.get(host_b)
        assert response.status_code == 200, response.text
        seen = response.json()
        assert secret not in json.dumps(seen)
        assert seen["leak"] is None
        assert seen["polluted"] is None
        assert seen["mark"] is None
        assert seen["push"] == 1
        assert seen["env"] == ["B_VAR"]
        assert seen["processEnv"] == ["B_VAR"]
        assert seen["internalSecret"] is None
        assert seen["platformGlobals"] == []
    # A's module state lives on in A's own isolates only.
    assert live.get(host_a).json()["hits"] > 1
    assert sorted(live.get(host_a).json()["env"]) == ["A_SECRET", "A_VAR"]
