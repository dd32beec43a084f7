"""What every tenant isolate finds besides its own code: the Cache API of a workers.dev hostname
(runtime/tenant.js) and the request metadata Cloudflare sets, through real workerd shards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.control_plane import FakeControlPlane, esm
from tests.runtime.harness import LiveDataPlane, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SECRET = "test-internal-secret"


@pytest.fixture(scope="module")
def cp() -> FakeControlPlane:
    return FakeControlPlane(SECRET)


@pytest.fixture(scope="module")
def live(cp: FakeControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDataPlane]:
    require_workerd()
    settings = platform_settings(tmp_path_factory.mktemp("surface"), shards=1)
    live = LiveDataPlane(settings, cp.app(), SECRET, route_ttl=60.0, stale_route=600.0)
    yield live
    live.close()


CACHE_WORKER = """
const atLoad = typeof caches.default.match;
export default {
  async fetch(request, env, ctx) {
    const key = new URL("https://example.com/key");
    const response = new Response("body", { headers: { "cache-control": "max-age=60" } });
    const named = await caches.open("mine");
    const results = {
      atLoad,
      putDefault: await caches.default.put(key, response),
      matchDefault: await caches.default.match(key),
      deleteDefault: await caches.default.delete(key),
      putNamed: await named.put(key.toString(), new Response("x")),
      matchNamed: await named.match(new Request(key)),
      deleteNamed: await named.delete(key),
      bodyUsed: response.bodyUsed,
      sameDefault: caches.default === caches.default,
    };
    ctx.waitUntil(caches.default.put(key, new Response("later")));
    return Response.json(results);
  },
};
"""


def test_the_cache_api_is_a_workers_dev_no_op_that_never_throws(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-cache", [esm(CACHE_WORKER)])
    cp.serve("cache.acct.localhost", "v-cache")
    response = live.get("cache.acct.localhost")
    assert response.status_code == 200, response.text
    results = response.json()
    assert results == {
        "atLoad": "function",
        "deleteDefault": False,
        "deleteNamed": False,
        "sameDefault": True,
        "bodyUsed": True,
    }, "put resolves undefined, match misses (both absent from the JSON)"


NAMED_ONLY = """
import { WorkerEntrypoint } from "cloudflare:workers";
export class Helper extends WorkerEntrypoint {}
export default class extends WorkerEntrypoint {
  async fetch() {
    return new Response(typeof Helper + " " + (await caches.default.match("https://a/")));
  }
}
"""


def test_a_default_class_entrypoint_and_named_exports_still_work(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-class", [esm(NAMED_ONLY)])
    cp.serve("class.acct.localhost", "v-class")
    response = live.get("class.acct.localhost")
    assert (response.status_code, response.text) == (200, "function undefined")


ECHO_WORKER = """
export default {
  async fetch(request) {
    return Response.json({
      url: request.url,
      method: request.method,
      body: await request.text(),
      cf: request.cf,
      headers: Object.fromEntries(request.headers),
    });
  },
};
"""
SPOOFED = {
    "CF-Connecting-IP": "1.2.3.4",
    "CF-Ray": "0000000000000000-SPOOF",
    "CF-IPCountry": "US",
    "CF-Visitor": '{"scheme":"https"}',
    "X-Real-IP": "1.2.3.4",
    "X-Forwarded-For": "9.9.9.9",
    "X-Forwarded-Proto": "https",
}
RAY = re.compile(r"^[0-9a-f]{16}-MFY$")


def echo(live: LiveDataPlane, cp: FakeControlPlane, host: str) -> dict[str, Any]:
    cp.add_version("v-echo", [esm(ECHO_WORKER)])
    cp.serve(host, "v-echo")
    with httpx.Client(timeout=30) as client:
        response = client.post(
            f"http://127.0.0.1:{live.port}/path?q=1",
            headers={"host": host, **SPOOFED},
            content=b"payload",
        )
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = response.json()
    return seen


def test_request_metadata_from_the_peer_and_spoofed_headers_replaced(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    seen = echo(live, cp, "echo.acct.localhost")
    headers = seen["headers"]
    assert (seen["method"], seen["body"]) == ("POST", "payload")
    assert seen["url"] == "http://echo.acct.localhost/path?q=1"
    assert seen["cf"] == {
        "clientIp": "127.0.0.1",
        "httpProtocol": "HTTP/1.1",
        "country": "XX",
        "colo": "MFY",
    }
    assert headers["cf-connecting-ip"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["cf-visitor"] == '{"scheme":"http"}'
    assert headers["cf-ipcountry"] == "XX"
    assert RAY.match(headers["cf-ray"]), headers["cf-ray"]
    # Cloudflare appends the peer to a forwarded chain it was sent; the client's part stays as sent.
    assert headers["x-forwarded-for"] == "9.9.9.9, 127.0.0.1"


def test_every_request_gets_its_own_ray(cp: FakeControlPlane, live: LiveDataPlane) -> None:
    rays = {echo(live, cp, "rays.acct.localhost")["headers"]["cf-ray"] for _ in range(3)}
    assert len(rays) == 3


@pytest.fixture(scope="module")
def behind_proxy(
    cp: FakeControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveDataPlane]:
    """A data plane that trusts 127.0.0.1 as a reverse proxy (--forwarded-allow-ips)."""
    require_workerd()
    settings = platform_settings(
        tmp_path_factory.mktemp("proxied"), shards=1, forwarded_allow_ips="127.0.0.1"
    )
    live = LiveDataPlane(settings, cp.app(), SECRET, route_ttl=60.0, stale_route=600.0)
    yield live
    live.close()


def test_behind_a_trusted_proxy_the_forwarded_client_and_protocol(
    cp: FakeControlPlane, behind_proxy: LiveDataPlane
) -> None:
    seen = echo(behind_proxy, cp, "proxied.acct.localhost")
    headers = seen["headers"]
    assert seen["cf"]["clientIp"] == "9.9.9.9"
    assert headers["cf-connecting-ip"] == headers["x-real-ip"] == "9.9.9.9"
    assert headers["x-forwarded-proto"] == "https"
    assert seen["url"] == "https://proxied.acct.localhost/path?q=1"
    assert headers["x-forwarded-for"] == "9.9.9.9"
    assert RAY.match(headers["cf-ray"]) and headers["cf-ray"] != SPOOFED["CF-Ray"]
    assert headers["cf-ipcountry"] == "XX"


SERVICE_WORKER = """
addEventListener("fetch", (event) => {
  event.waitUntil(Promise.resolve());
  event.respondWith(new Response("sw " + GREETING + " " + new URL(event.request.url).pathname));
});
"""


@pytest.mark.parametrize("kind", ["cjs", "esm"])
def test_service_worker_syntax_is_served(
    cp: FakeControlPlane, live: LiveDataPlane, kind: str
) -> None:
    """A script that adds a fetch listener (wrangler's service-worker format uploads it as
    CommonJS; an ES module without a default export does the same): its bindings are globals."""
    cp.add_version(
        f"v-sw-{kind}",
        [{"name": "index.js", "kind": kind, "text": SERVICE_WORKER}],
        env={"GREETING": "hello"},
    )
    cp.serve(f"sw-{kind}.acct.localhost", f"v-sw-{kind}")
    response = live.get(f"sw-{kind}.acct.localhost", "/there")
    assert (response.status_code, response.text) == (200, "sw hello /there")


def test_a_module_worker_gets_no_bindings_as_globals(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    source = "export default { fetch() { return new Response(typeof GREETING); } };"
    cp.add_version("v-noglobals", [esm(source)], env={"GREETING": "hello"})
    cp.serve("noglobals.acct.localhost", "v-noglobals")
    assert live.get("noglobals.acct.localhost").text == "undefined"


WEBSOCKET = """
export default {
  fetch(request) {
    if (request.headers.get("upgrade") !== "websocket" || request.cf.clientIp !== "127.0.0.1") {
      return new Response("not as expected", { status: 400 });
    }
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    return new Response(null, { status: 101, webSocket: client });
  },
};
"""


def test_a_websocket_upgrade_passes_with_the_metadata(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-ws", [esm(WEBSOCKET)])
    cp.serve("ws.acct.localhost", "v-ws")
    handshake = {
        "host": "ws.acct.localhost",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
    }
    with httpx.Client(timeout=30) as client:
        response = client.get(f"http://127.0.0.1:{live.port}/", headers=handshake)
    assert response.status_code == 101, response.text
    assert response.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
