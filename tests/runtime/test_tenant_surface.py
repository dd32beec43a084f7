"""What every tenant isolate finds besides its own code: the Cache API of a workers.dev hostname
(runtime/tenant.js) and the request metadata Cloudflare sets, through real workerd shards."""

from __future__ import annotations

from collections.abc import Iterator

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
