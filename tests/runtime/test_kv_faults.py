"""KV bindings and tails when the control plane is slow or down (a fake internal API): the tenant's
KV call fails within the timeout with an Error it can catch; a tail that cannot deliver never
fails the tenant's requests. How long a KV call waits is measured in bench/timeouts.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.control_plane import FakeControlPlane, esm
from tests.runtime.harness import LiveDataPlane, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

SECRET = "test-internal-secret"

READER = """
export default {
  async fetch(request, env) {
    const started = Date.now();
    try {
      const value = await env.STORE.get("greeting");
      return Response.json({ value });
    } catch (err) {
      return Response.json({ error: String(err), ms: Date.now() - started });
    }
  },
};
"""


@pytest.fixture(scope="module")
def cp() -> FakeControlPlane:
    return FakeControlPlane(SECRET)


@pytest.fixture(scope="module")
def live(cp: FakeControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDataPlane]:
    """Routes cached for a minute, so that only KV and tail calls meet the faults."""
    require_workerd()
    settings = platform_settings(tmp_path_factory.mktemp("kv-faults"), shards=1)
    live = LiveDataPlane(settings, cp.app(), SECRET, route_ttl=60.0, control_plane_timeout=0.5)
    yield live
    live.close()


@pytest.fixture(autouse=True)
def healthy(cp: FakeControlPlane) -> Iterator[None]:
    yield
    cp.down = False
    cp.delay = 0.0


def test_a_kv_read_fails_with_an_error_when_the_control_plane_is_down_or_slow(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version("v-reader", [esm(READER)], kv={"STORE": "ns-reader"})
    cp.serve("reader.acct.localhost", "v-reader")
    cp.kv[("ns-reader", "greeting")] = b"hi"
    assert live.get("reader.acct.localhost").json() == {"value": "hi"}

    cp.down = True
    failed = live.get("reader.acct.localhost").json()
    assert failed["error"].startswith("Error: KV GET failed: 500"), failed

    cp.down, cp.delay = False, 2.0
    slow = live.get("reader.acct.localhost").json()
    assert "did not answer in time" in slow["error"], slow  # not the value 2 s later

    cp.delay = 0.0
    assert live.get("reader.acct.localhost").json() == {"value": "hi"}


def test_a_tail_that_cannot_deliver_does_not_fail_requests(
    cp: FakeControlPlane, live: LiveDataPlane
) -> None:
    cp.add_version(
        "v-logger",
        [esm("export default { fetch() { console.log('x'); return new Response('ok'); } };")],
    )
    cp.serve("logger.acct.localhost", "v-logger", tail=True)
    assert live.get("logger.acct.localhost").text == "ok"
    live.wait_for(lambda: len(cp.tail_batches) == 1)
    batch = cp.tail_batches[0]
    assert (batch["account_id"], batch["script"]) == ("acct", "script")  # the version's
    assert batch["events"][0]["logs"][0]["message"] == ["x"]

    cp.down = True
    for _ in range(5):
        response = live.get("logger.acct.localhost")
        assert (response.status_code, response.text) == (200, "ok")
    # Their events were posted and refused before the control plane is back: dropped, not retried.
    live.wait_for(lambda: sum(len(b["events"]) for b in cp.failed_tail_batches) == 5)
    cp.down = False
    assert live.get("logger.acct.localhost").text == "ok"
    live.wait_for(lambda: len(cp.tail_batches) == 2)
    assert len(cp.tail_batches[1]["events"]) == 1
