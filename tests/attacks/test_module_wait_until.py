"""The waitUntil a tenant imports from cloudflare:workers (issue 9): `import { waitUntil } from
"cloudflare:workers"` reaches workerd's own waitUntil, not the context the wrapper main module hands
the handler (tenant.js), so before the prelude captured it that work was neither capped nor seen:
the dispatcher ended the request's mark at the response, a loop 800 ms later froze the shard while
only a neighbour's request was in flight, and the neighbour was blamed with certainty and
quarantined. The same goes for the real ExecutionContext's waitUntil, which a WorkerEntrypoint's
RPC method (no fetch: not wrapped) is handed, and for work left from a WebSocket handler after the
response (no invocation of the version is open then: the prelude asks the dispatcher to hold one).
An isolate whose first call is a named entrypoint or an RPC method (through a service binding of
another Worker of the account) got a real context before the prelude had replaced the prototype's
waitUntil, so the tenant could keep the original method and run its work uncapped and unseen.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.attacks.test_lingering_spin import (
    assert_attacker_quarantined,
    rounds,
    spin_in_wait_until,
)
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

MODULE_WAIT_UNTIL_SPIN = """
import { waitUntil } from "cloudflare:workers";
export default {
  async fetch() {
    waitUntil(new Promise((resolve) => setTimeout(resolve, 800)).then(() => { while (true) {} }));
    return new Response("bye");
  },
};
"""
# The namespace and a dynamic import reach the same module instance.
DYNAMIC_WAIT_UNTIL_SPIN = """
export default {
  async fetch() {
    const workers = await import("cloudflare:workers");
    workers.waitUntil(new Promise((resolve) => setTimeout(resolve, 800)).then(() => { while (true) {} }));
    return new Response("bye");
  },
};
"""
# A default class without fetch is not wrapped: its RPC method (reached here through the
# Worker's own ctx.exports) gets the real ExecutionContext.
RPC_CTX_SPIN = """
import { WorkerEntrypoint } from "cloudflare:workers";
export class Helper extends WorkerEntrypoint {
  async later() {
    this.ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 800)).then(() => { while (true) {} }));
    return "ok";
  }
}
export default {
  async fetch(request, env, ctx) {
    return new Response(await ctx.exports.Helper.later() === "ok" ? "bye" : "?");
  },
};
"""
# The first call into the isolate is an RPC method (of a named entrypoint, or of a default class
# without fetch) or a named entrypoint's fetch, reached through another Worker's service binding:
# it keeps the prototype's waitUntil as it finds it and spins in it after its caller answered.
SPIN_WITH_PROTOTYPE = (
    "const raw = Object.getPrototypeOf(this.ctx).waitUntil;\n"
    "    raw.call(this.ctx, new Promise((resolve) => setTimeout(resolve, 800))"
    ".then(() => { while (true) {} }));"
)
NAMED_RPC_FIRST_SPIN = f"""
import {{ WorkerEntrypoint }} from "cloudflare:workers";
export class Helper extends WorkerEntrypoint {{
  async later() {{
    {SPIN_WITH_PROTOTYPE}
    return "ok";
  }}
}}
export default {{
  async fetch() {{ return new Response("default"); }},
}};
"""
DEFAULT_RPC_FIRST_SPIN = f"""
import {{ WorkerEntrypoint }} from "cloudflare:workers";
export default class extends WorkerEntrypoint {{
  async later() {{
    {SPIN_WITH_PROTOTYPE}
    return "ok";
  }}
}}
"""
NAMED_FETCH_FIRST_SPIN = f"""
import {{ WorkerEntrypoint }} from "cloudflare:workers";
export class Helper extends WorkerEntrypoint {{
  async fetch() {{
    {SPIN_WITH_PROTOTYPE}
    return new Response("ok");
  }}
}}
export default {{
  async fetch() {{ return new Response("default"); }},
}};
"""
# The attacker's other Worker, through which the attack comes: its request answers at once.
CALLER = """
export default {
  async fetch(request, env) {
    try {
      const answer = env.MODE === "fetch" ? await (await env.TARGET.fetch("https://t/")).text() : await env.TARGET.later();
      return new Response(answer === "ok" ? "bye" : "?");
    } catch (err) {
      return new Response(String(err)); // shown by the attack's assertion
    }
  },
};
"""
WEBSOCKET_WAIT_UNTIL_SPIN = """
import { waitUntil } from "cloudflare:workers";
export default {
  async fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    server.addEventListener("message", () => {
      waitUntil(new Promise((resolve) => setTimeout(resolve, 800)).then(() => { while (true) {} }));
      server.close(1000, "bye");
    });
    return new Response(null, { status: 101, webSocket: client });
  },
};
"""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LivePlatform]:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path, shards=1))
    assert live.dp is not None
    live.dp.on_incident = live.platform.handle_incident  # as `mayfly serve` wires it
    yield live
    live.close()


def message_then_close(live: LivePlatform) -> Callable[[str], None]:
    def attack(host: str) -> None:
        sock = socket.create_connection(("127.0.0.1", live.port))
        with connect(f"ws://{host}/", sock=sock, open_timeout=10, close_timeout=2) as ws:
            ws.send("go")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)  # the tenant closes; its loop starts 800 ms later

    return attack


@pytest.mark.parametrize(
    "source",
    [MODULE_WAIT_UNTIL_SPIN, DYNAMIC_WAIT_UNTIL_SPIN, RPC_CTX_SPIN],
    ids=["import", "dynamic", "rpc-ctx"],
)
def test_an_endless_loop_in_imported_wait_until_is_blamed_on_its_worker(
    live: LivePlatform, source: str
) -> None:
    if source is RPC_CTX_SPIN:  # ctx.exports (the Worker's own entrypoints) from this date on
        deploy = live.deploy
        live.deploy = functools.partial(deploy, compatibility_date="2025-11-17")  # type: ignore[method-assign]
    outcome: dict[str, Any] = rounds(live, source, spin_in_wait_until(live))
    assert_attacker_quarantined(outcome)


@pytest.mark.parametrize(
    ("source", "entrypoint", "mode"),
    [
        (NAMED_RPC_FIRST_SPIN, "Helper", "rpc"),
        (DEFAULT_RPC_FIRST_SPIN, None, "rpc"),
        (NAMED_FETCH_FIRST_SPIN, "Helper", "fetch"),
    ],
    ids=["named-rpc-first", "default-rpc-first", "named-fetch-first"],
)
def test_a_real_context_handed_out_first_cannot_keep_the_original_wait_until(
    live: LivePlatform, source: str, entrypoint: str | None, mode: str
) -> None:
    """The spinner is reached only through the service binding of the attacker's `caller` Worker,
    so its isolate's first call is the method (or named fetch) that spins."""
    deploy = live.deploy
    binding: dict[str, Any] = {"type": "service", "name": "TARGET", "service": "spinner"}
    if entrypoint is not None:
        binding["entrypoint"] = entrypoint

    def deploy_with_caller(account: dict[str, Any], script: str, source: str, **kwargs: Any) -> str:
        version = deploy(account, script, source, **kwargs)
        if script == "spinner":
            mode_var = {"type": "plain_text", "name": "MODE", "text": mode}
            deploy(account, "caller", CALLER, bindings=[binding, mode_var])
        return version

    live.deploy = deploy_with_caller  # type: ignore[method-assign]

    def attack(host: str) -> None:
        assert live.get(host.replace("spinner.", "caller.", 1)).text == "bye"

    outcome: dict[str, Any] = rounds(live, source, attack)
    assert_attacker_quarantined(outcome)


def test_wait_until_from_a_websocket_handler_after_the_response_is_blamed_on_its_worker(
    live: LivePlatform,
) -> None:
    outcome: dict[str, Any] = rounds(live, WEBSOCKET_WAIT_UNTIL_SPIN, message_then_close(live))
    assert_attacker_quarantined(outcome)
