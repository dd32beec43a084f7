"""When the data plane's time limits cut in (not run in CI; tests/runtime/test_dispatcher.py and
test_kv_faults.py check what happens at each limit, this measures when).

One data plane (one real workerd shard) in front of the fake control plane, with a request limit of
1 s and a control plane timeout of 0.3 s. Each figure is the median of --runs, printed with the
limit it should match and their ratio (≈ 1: the limit cut in, not something later):

  route lookup   a host never seen while the control plane takes 2 s: seconds to the 503;
  KV read        a Worker's KV get while the control plane takes 2 s: how long the get took in the
                 Worker (its own clock) until it failed;
  async hang     a Worker that awaits forever: seconds to the 504;
  endless body   a Worker that streams forever: seconds from the request to the cut.

A plain request's round trip is measured in the same run, as the baseline of what is not waiting.

    .venv/bin/python bench/timeouts.py [--runs 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.control_plane import FakeControlPlane, esm
from tests.runtime.harness import LiveDataPlane, platform_settings

SECRET = "timeouts-secret"
REQUEST_TIMEOUT = 1.0
CONTROL_PLANE_TIMEOUT = 0.3
SLOW_CONTROL_PLANE = 2.0
HELLO = "export default { fetch() { return new Response('hello'); } };"
HANG = "export default { async fetch() { await scheduler.wait(60_000); return new Response('late'); } };"
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
    return new Response(body);
  },
};
"""
READER = """
export default {
  async fetch(request, env) {
    const started = Date.now();
    try {
      return Response.json({ value: await env.STORE.get("k") });
    } catch (err) {
      return Response.json({ error: String(err), ms: Date.now() - started });
    }
  },
};
"""


def seconds(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


class Bench:
    def __init__(self, directory: Path):
        self.cp = FakeControlPlane(SECRET)
        self.cp.add_version("v-hello", [esm(HELLO)])
        self.cp.add_version("v-hang", [esm(HANG)])
        self.cp.add_version("v-endless", [esm(ENDLESS)])
        self.cp.add_version("v-reader", [esm(READER)], kv={"STORE": "ns"})
        self.cp.kv[("ns", "k")] = b"v"
        for name in ("hello", "hang", "endless", "reader"):
            self.cp.serve(f"{name}.acct.localhost", f"v-{name}")
        settings = platform_settings(directory, shards=1, request_timeout=REQUEST_TIMEOUT)
        self.live = LiveDataPlane(
            settings,
            self.cp.app(),
            SECRET,
            route_ttl=3600.0,
            control_plane_timeout=CONTROL_PLANE_TIMEOUT,
        )
        self._hosts = itertools.count()
        for name in ("hello", "hang", "endless", "reader"):
            self.live.status(f"{name}.acct.localhost")  # routes cached, code loaded

    def close(self) -> None:
        self.live.close()

    def plain(self) -> float:
        def request() -> None:
            assert self.live.get("hello.acct.localhost").text == "hello"

        return seconds(request)

    def route_lookup(self) -> float:
        host = f"new-{next(self._hosts)}.acct.localhost"
        self.cp.serve(host, "v-hello")
        self.cp.delay = SLOW_CONTROL_PLANE
        try:
            status = 0

            def request() -> None:
                nonlocal status
                status = self.live.get(host).status_code

            took = seconds(request)
        finally:
            self.cp.delay = 0.0
        assert status == 503, status
        return took

    def kv_read(self) -> float:
        self.cp.delay = SLOW_CONTROL_PLANE
        try:
            answer = self.live.get("reader.acct.localhost").json()
        finally:
            self.cp.delay = 0.0
        assert "did not answer in time" in answer["error"], answer
        return float(answer["ms"]) / 1000

    def async_hang(self) -> float:
        status = 0

        def request() -> None:
            nonlocal status
            status = self.live.get("hang.acct.localhost").status_code

        took = seconds(request)
        assert status == 504, status
        return took

    def endless_body(self) -> float:
        def request() -> None:
            url = f"http://127.0.0.1:{self.live.port}/"
            headers = {"host": "endless.acct.localhost"}
            with (
                httpx.Client(timeout=30) as client,
                client.stream("GET", url, headers=headers) as r,
            ):
                try:
                    for _ in r.iter_raw():
                        pass
                except httpx.HTTPError:
                    return
            raise AssertionError("the endless body ended without being cut")

        return seconds(request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        try:
            figures: dict[str, list[float]] = {}
            measures = {
                "plain": bench.plain,
                "route lookup": bench.route_lookup,
                "KV read": bench.kv_read,
                "async hang": bench.async_hang,
                "endless body": bench.endless_body,
            }
            for _ in range(args.runs):  # alternated, so that load hits every figure alike
                for name, measure in measures.items():
                    figures.setdefault(name, []).append(measure())
        finally:
            bench.close()
    median = {name: statistics.median(values) for name, values in figures.items()}
    print(f"plain request: {median['plain'] * 1000:.0f} ms (the baseline: nothing waited for)")
    print(
        f"(without the limits: the control plane answers after {SLOW_CONTROL_PLANE:g} s, a tenant never)"
    )
    limits = {
        "route lookup": ("control plane timeout", CONTROL_PLANE_TIMEOUT),
        "KV read": ("control plane timeout", CONTROL_PLANE_TIMEOUT),
        "async hang": ("request timeout", REQUEST_TIMEOUT),
        "endless body": ("request timeout", REQUEST_TIMEOUT),
    }
    for name, (limit, value) in limits.items():
        print(
            f"{name}: {median[name]:.2f} s against the {limit} of {value:g} s: "
            f"ratio {median[name] / value:.2f} (≈ 1: cut at the limit)"
        )


if __name__ == "__main__":
    main()
