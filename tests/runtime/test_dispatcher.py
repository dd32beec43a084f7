"""The dispatcher Worker in real workerd shards, in front of a fake internal API.

What happens at each time limit (control plane timeout, request timeout, a body cut) is tested
here; when it happens is measured in bench/timeouts.py."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.control_plane import FakeControlPlane, esm
from tests.runtime.harness import LiveDataPlane, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SECRET = "test-internal-secret"
HELLO = "export default { fetch() { return new Response('hello ' + %s); } };"


@pytest.fixture(scope="module")
def cp() -> FakeControlPlane:
    return FakeControlPlane(SECRET)


@pytest.fixture(scope="module")
def live(cp: FakeControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDataPlane]:
    """One shard, a long route TTL (only invalidations refresh routes) and a 1 s request limit."""
    require_workerd()
    settings = platform_settings(
        tmp_path_factory.mktemp("dispatcher"), shards=1, request_timeout=1.0
    )
    live = LiveDataPlane(settings, cp.app(), SECRET, route_ttl=60.0, stale_route=600.0)
    yield live
    live.close()


@pytest.fixture(autouse=True)
def healthy(cp: FakeControlPlane) -> None:
    cp.down = False
    cp.delay = 0.0


def test_serves_a_version_with_every_module_kind_and_its_env(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    empty_wasm = base64.b64encode(b"\0asm\x01\0\0\0").decode()
    main = """
        import greeting from "./lib/greeting.txt";
        import config from "./config.json";
        import bytes from "./blob.bin";
        import wasm from "./empty.wasm";
        import { twice } from "./lib/twice.js";
        import legacy from "./legacy.cjs";
        export default {
          async fetch(request, env) {
            return Response.json({
              greeting, config, bytes: new Uint8Array(bytes).length,
              wasm: wasm instanceof WebAssembly.Module, twice: twice(21), legacy: legacy.name,
              env, url: request.url,
            });
          },
        };
    """
    cp.add_version(
        "v-kinds",
        [
            {"name": "src/index.js", "kind": "esm", "text": main},
            {"name": "src/lib/greeting.txt", "kind": "text", "text": "hi"},
            {"name": "src/config.json", "kind": "json", "text": '{"a": [1, 2]}'},
            {"name": "src/blob.bin", "kind": "data", "base64": base64.b64encode(b"123").decode()},
            {"name": "src/empty.wasm", "kind": "wasm", "base64": empty_wasm},
            {
                "name": "src/lib/twice.js",
                "kind": "esm",
                "text": "export const twice = (n) => 2 * n;",
            },
            {"name": "src/legacy.cjs", "kind": "cjs", "text": "module.exports = {name: 'cjs'};"},
        ],
        main="src/index.js",
        env={"GREETING": "hello", "LIMITS": {"max": 3}, "TOKEN": "s3cr3t"},
    )
    cp.serve("kinds.acct.localhost", "v-kinds")
    response = live.get("kinds.acct.localhost", "/path?q=1")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "greeting": "hi",
        "config": {"a": [1, 2]},
        "bytes": 3,
        "wasm": True,
        "twice": 42,
        "legacy": "cjs",
        "env": {"GREETING": "hello", "LIMITS": {"max": 3}, "TOKEN": "s3cr3t"},
        "url": "http://kinds.acct.localhost/path?q=1",
    }
    assert cp.refused == 0


def test_the_host_is_matched_without_case_port_or_trailing_dot(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-case", [esm(HELLO % "'case'")])
    cp.serve("case.acct.localhost", "v-case")
    for host in ("CASE.Acct.localhost", "case.acct.localhost:8788", "case.acct.localhost."):
        response = live.get(host)
        assert (response.status_code, response.text) == (200, "hello case"), host


@pytest.mark.parametrize(
    ("status", "code"), [("unknown", 404), ("disabled", 404), ("moved", 410), ("expired", 410)]
)
def test_refused_routes(cp: FakeControlPlane, live: LiveDataPlane, status: str, code: int) -> None:
    host = f"{status}.acct.localhost"
    cp.refuse(host, status, f"message for {status}")
    response = live.get(host)
    assert response.status_code == code
    assert response.text.strip() == f"message for {status}"
    assert response.headers["x-mayfly-error"] == status


def test_an_unknown_host_is_404(live: LiveDataPlane) -> None:
    response = live.get("nothing.here.localhost")
    assert response.status_code == 404
    assert "No Worker is served at nothing.here.localhost" in response.text


def test_an_expired_account_is_410_at_request_time_from_a_cached_route(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-exp", [esm(HELLO % "'soon gone'")])
    expires_at_ms = int(time.time() * 1000) + 1500
    cp.serve("exp.acct.localhost", "v-exp", expires_at_ms=expires_at_ms)
    assert live.get("exp.acct.localhost").status_code == 200
    live.wait_for(lambda: time.time() * 1000 > expires_at_ms)  # the account's end, by the clock
    response = live.get("exp.acct.localhost")
    assert response.status_code == 410
    assert "expired" in response.text
    assert cp.route_lookups["exp.acct.localhost"] == 1  # the cached route, no new question


def test_concurrent_misses_make_one_lookup_of_each_kind(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-dedupe", [esm(HELLO % "'once'")])
    cp.serve("dedupe.acct.localhost", "v-dedupe")
    cp.delay = 0.3
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: live.status("dedupe.acct.localhost"), range(16)))
    assert statuses == [200] * 16
    assert cp.route_lookups["dedupe.acct.localhost"] == 1
    assert cp.version_fetches["v-dedupe"] == 1


def test_a_worker_never_seen_loads_in_one_round_trip(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-once", [esm(HELLO % "'once'")])
    cp.serve("once.acct.localhost", "v-once")
    assert live.get("once.acct.localhost").text == "hello once"
    assert cp.route_lookups["once.acct.localhost"] == 1
    assert cp.version_fetches["v-once"] == 1
    assert cp.version_requests["v-once"] == 0  # the code came with the route


def test_an_invalidation_makes_the_next_request_see_the_change(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    host = "redeploy.acct.localhost"
    cp.add_version("v-old", [esm(HELLO % "'old'")])
    cp.add_version("v-new", [esm(HELLO % "'new'")])
    cp.serve(host, "v-old")
    assert live.get(host).text == "hello old"
    cp.serve(host, "v-new")
    assert live.get(host).text == "hello old"  # cached for the route TTL
    live.invalidate([host.upper() + ":8788"])
    assert live.get(host).text == "hello new"


def test_a_lookup_answered_before_an_invalidation_does_not_refill_the_cache(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    host = "race.acct.localhost"
    cp.add_version("v-race-1", [esm(HELLO % "'first'")])
    cp.add_version("v-race-2", [esm(HELLO % "'second'")])
    cp.serve(host, "v-race-1")
    cp.delay = 0.5
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(live.get, host)
        live.wait_for(lambda: cp.route_lookups[host] == 1)  # in flight, with the old answer
        cp.serve(host, "v-race-2")
        live.invalidate([host])
        assert slow.result().text == "hello first"
    cp.delay = 0.0
    assert live.get(host).text == "hello second"


def test_an_unreachable_control_plane_is_503_without_a_cached_route(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.down = True
    response = live.get("never-seen.acct.localhost")
    assert response.status_code == 503
    assert response.headers["x-mayfly-error"] == "unavailable"


def test_a_stale_route_serves_while_the_control_plane_is_down(
    cp: FakeControlPlane, tmp_path: Path
) -> None:
    require_workerd()
    cp.add_version("v-stale", [esm(HELLO % "'stale'")])
    cp.serve("stale.acct.localhost", "v-stale")
    live = LiveDataPlane(
        platform_settings(tmp_path, shards=1), cp.app(), SECRET, route_ttl=0.2, stale_route=600
    )
    try:
        assert live.get("stale.acct.localhost").text == "hello stale"
        cp.down = True

        def served_after_a_failed_lookup() -> bool:
            """Once the route is no longer fresh, a request asks again (the lookup fails): it is
            still answered from the stale route."""
            response = live.get("stale.acct.localhost")
            assert (response.status_code, response.text) == (200, "hello stale")
            return cp.failed_lookups["stale.acct.localhost"] >= 1

        live.wait_for(served_after_a_failed_lookup)
        assert live.get("other.acct.localhost").status_code == 503
    finally:
        live.close()


def test_a_control_plane_that_does_not_answer_in_time_is_503(
    cp: FakeControlPlane, tmp_path: Path
) -> None:
    require_workerd()
    cp.add_version("v-slow", [esm(HELLO % "'slow'")])
    cp.serve("slow.acct.localhost", "v-slow")
    cp.delay = 2.0
    live = LiveDataPlane(
        platform_settings(tmp_path, shards=1), cp.app(), SECRET, control_plane_timeout=0.3
    )
    try:
        # The route would come after 2 s (a 200): the lookup was given up at the timeout.
        response = live.get("slow.acct.localhost")
        assert response.status_code == 503
        assert response.headers["x-mayfly-error"] == "unavailable"
        assert "cannot reach its control plane" in response.text
        assert cp.route_lookups["slow.acct.localhost"] == 1
    finally:
        live.close()


def test_an_async_hang_ends_with_504_after_the_request_timeout(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version(
        "v-hang",
        [
            esm(
                "export default { async fetch() { await scheduler.wait(60_000); return new Response('late'); } };"
            )
        ],
    )
    cp.serve("hang.acct.localhost", "v-hang")
    response = live.get("hang.acct.localhost")
    assert response.status_code == 504
    assert response.headers["x-mayfly-error"] == "timeout"
    assert "did not answer within 1 s" in response.text


ENDLESS = """
export default {
  fetch() {
    const tick = new TextEncoder().encode("tick\\n");
    const body = new ReadableStream({
      async pull(controller) {
        await scheduler.wait(50);
        controller.enqueue(tick);
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain" } });
  },
};
"""


def test_an_endless_streamed_body_is_cut_at_the_request_timeout(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-endless", [esm(ENDLESS)])
    cp.serve("endless.acct.localhost", "v-endless")
    received = b""
    deadline = time.monotonic() + 60  # a hang guard only: the cut comes at the 1 s limit
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "GET", f"http://127.0.0.1:{live.port}/", headers={"host": "endless.acct.localhost"}
        ) as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.HTTPError):
            for chunk in response.iter_raw():
                received += chunk
                assert time.monotonic() < deadline, "the body was never cut"
    assert received.startswith(b"tick\n")


def test_a_body_that_ends_in_time_is_whole_with_its_length(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    source = """
    export default {
      fetch() {
        const { readable, writable } = new TransformStream();
        (async () => {
          const writer = writable.getWriter();
          for (let i = 0; i < 5; i++) {
            await scheduler.wait(20);
            await writer.write(new TextEncoder().encode("part" + i + ";"));
          }
          await writer.close();
        })();
        return new Response(readable);
      },
    };
    """
    cp.add_version("v-parts", [esm(source)])
    cp.serve("parts.acct.localhost", "v-parts")
    cp.add_version(
        "v-sized",
        [
            esm(
                "export default { fetch() { return new Response('x'.repeat(100000),"
                " { headers: { 'content-length': '100000' } }); } };"
            )
        ],
    )
    cp.serve("sized.acct.localhost", "v-sized")
    assert live.get("parts.acct.localhost").text == "part0;part1;part2;part3;part4;"
    sized = live.get("sized.acct.localhost")
    assert sized.text == "x" * 100000
    assert sized.headers["content-length"] == "100000"


def test_a_tenant_exception_is_500_without_details(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version(
        "v-throw", [esm("export default { fetch() { throw new Error('secret detail'); } };")]
    )
    cp.serve("throw.acct.localhost", "v-throw")
    response = live.get("throw.acct.localhost")
    assert response.status_code == 500
    assert "secret detail" not in response.text


def test_health_reports_routes_and_loaded_versions(live: LiveDataPlane) -> None:
    shard = live.shards()[0]
    health = live.loop.run(shard.probe(1.0))
    assert health["ok"] is True
    assert health["loaded"] >= 1
    assert json.dumps(health)
