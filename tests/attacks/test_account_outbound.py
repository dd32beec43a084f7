"""One account floods the internet from many Workers at once (issue 9): the bound per version
(`outbound_connections`) let an account hold that many sockets per Worker on a shard, so enough
Workers (a temporary account holds up to its script quota, and one person can make many accounts)
exhausted the shard's descriptors and every tenant on it failed. runtime/outbound.js now bounds
the connections of an account's versions together (`account_outbound_connections`) and of the
shard (`shard_outbound_connections`), the second shared fairly between accounts.

The targets are a server in a network namespace of its own at a public-looking address (as
bench/outbound_flood.py's), which holds every /slow request until the test releases them and
counts the connections it holds, per flooding account: what the test sees is the count itself.
Making the namespace takes root (CI runs as root)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import missing
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

CONNECTIONS = 4  # per version
ACCOUNT = 6  # per account
SHARD = 16  # per shard: 8 first come first served, 8 in fair shares
# Not 198.51.100.1, which bench/outbound_flood.py uses; one of its own per test process.
ADDRESS = f"198.51.100.{10 + os.getpid() % 240}"

SERVER = """
import asyncio, json, sys
state = {"gate": asyncio.Event(), "open": {}, "peak": {}}
async def handle(reader, writer):
    tag = None
    try:
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        path = head.split(b" ")[1].decode()
        body = b"fast"
        if path.startswith("/slow"):
            tag = path.partition("from=")[2]
            state["open"][tag] = state["open"].get(tag, 0) + 1
            state["peak"][tag] = max(state["peak"].get(tag, 0), state["open"][tag])
            await state["gate"].wait()
            body = b"slow"
        elif path == "/stats":
            body = json.dumps({"open": state["open"], "peak": state["peak"]}).encode()
        elif path == "/hold":
            state.update(gate=asyncio.Event(), peak={})
        elif path == "/release":
            state["gate"].set()
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(body) + body)
        await writer.drain()
    except Exception:
        pass
    finally:
        if tag is not None:
            state["open"][tag] -= 1
        writer.close()
async def main():
    await asyncio.start_server(handle, sys.argv[1], 80, backlog=1024)
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

# Fires `n` fetch()es at once at the slow server, tagged with `tag`, and reads every body.
FLOODER = """
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n"));
    const tag = url.searchParams.get("tag");
    const ended = await Promise.allSettled(
      Array.from({ length: n }, () => fetch(`http://ADDRESS/slow?from=${tag}`).then((r) => r.text())),
    );
    const outcome = {};
    for (const r of ended) {
      const key = r.status === "fulfilled" ? r.value : String(r.reason);
      outcome[key] = (outcome[key] ?? 0) + 1;
    }
    return Response.json(outcome);
  },
};
""".replace("ADDRESS", ADDRESS)
NEIGHBOUR = """
export default {
  async fetch() {
    const response = await fetch("http://ADDRESS/fast");
    return new Response(await response.text(), { status: response.status });
  },
};
""".replace("ADDRESS", ADDRESS)


class SlowServer:
    """The server in its namespace, and the host's end of the veth pair that reaches it."""

    def __init__(self) -> None:
        tag = os.getpid() % 100_000
        self.ns, self.host_end, self.ns_end = f"mfacct{tag}", f"mfa{tag}h", f"mfa{tag}n"
        self.process: subprocess.Popen[str] | None = None
        try:
            self._up()
        except BaseException:
            self.close()
            raise

    def _up(self) -> None:
        for argv in (
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.host_end, "type", "veth", "peer", "name", self.ns_end],
            ["ip", "link", "set", self.ns_end, "netns", self.ns],
            ["ip", "link", "set", self.host_end, "up"],
            ["ip", "route", "add", f"{ADDRESS}/32", "dev", self.host_end],
            ["ip", "-n", self.ns, "link", "set", "lo", "up"],
            ["ip", "-n", self.ns, "addr", "add", f"{ADDRESS}/32", "dev", self.ns_end],
            ["ip", "-n", self.ns, "link", "set", self.ns_end, "up"],
            ["ip", "-n", self.ns, "route", "add", "default", "dev", self.ns_end],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", SERVER, ADDRESS],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def call(self, path: str) -> Any:
        conn = http.client.HTTPConnection(ADDRESS, 80, timeout=10)
        try:
            conn.request("GET", path)
            body = conn.getresponse().read()
        finally:
            conn.close()
        return json.loads(body) if path == "/stats" else body

    def open(self) -> dict[str, int]:
        """Connections held now, by flooding account (none: left out)."""
        counts: dict[str, int] = self.call("/stats")["open"]
        return {tag: count for tag, count in counts.items() if count}

    def peak(self) -> dict[str, int]:
        counts: dict[str, int] = self.call("/stats")["peak"]
        return counts

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            if self.process.stdout is not None:
                self.process.stdout.close()
        subprocess.run(["ip", "link", "del", self.host_end], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], check=False, capture_output=True)


@pytest.fixture(scope="module")
def server() -> Iterator[SlowServer]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        missing("root and iproute2 (`ip`), to give the slow server a network namespace")
    slow = SlowServer()
    yield slow
    slow.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, server: SlowServer) -> Iterator[LivePlatform]:
    require_workerd()
    settings = platform_settings(
        tmp_path_factory.mktemp("account-outbound"),
        shards=1,
        subrequests=50,
        outbound_connections=CONNECTIONS,
        account_outbound_connections=ACCOUNT,
        shard_outbound_connections=SHARD,
    )
    live = LivePlatform(settings)
    yield live
    live.close()


def outbound(live: LivePlatform) -> dict[str, int]:
    """What the shard says its tenants hold: {open, waiting, accounts} (its last health answer)."""
    health = live.shards()[0].last_health or {}
    use: dict[str, int] = health.get("outbound", {"open": -1, "waiting": -1, "accounts": -1})
    return use


class Floods:
    """Flooding requests running on threads of their own, each to one host."""

    def __init__(self, live: LivePlatform, hosts: list[str], n: int, tag: str) -> None:
        self.outcomes: list[Any] = []
        self.threads = [
            threading.Thread(target=self._run, args=(live, host, f"/?n={n}&tag={tag}"))
            for host in hosts
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, live: LivePlatform, host: str, path: str) -> None:
        response = live.get(host, path, timeout=60)
        self.outcomes.append(response.json() if response.status_code == 200 else response.text)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def flooders(live: LivePlatform, workers: int) -> list[str]:
    account = live.provision()
    hosts = []
    for index in range(workers):
        live.deploy(account, f"flood{index}", FLOODER)
        hosts.append(live.host(account, f"flood{index}"))
    return hosts


def wait_until_held(live: LivePlatform, server: SlowServer, expected: int) -> None:
    """Until every flooding subrequest reached Outbound (open or waiting), and every one Outbound
    let through reached the server."""

    def held() -> bool:
        use = outbound(live)
        return (
            use["open"] + use["waiting"] == expected and sum(server.open().values()) == use["open"]
        )

    try:
        live.wait_for(held, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"shard: {outbound(live)}, server: {server.open()}") from exc


def neighbour_fetches(live: LivePlatform) -> None:
    account = live.provision()
    live.deploy(account, "fetcher", NEIGHBOUR)
    response = live.get(live.host(account, "fetcher"), timeout=15)
    assert (response.status_code, response.text) == (200, "fast")


def test_an_accounts_workers_together_hold_at_most_its_bound(
    live: LivePlatform, server: SlowServer
) -> None:
    server.call("/hold")
    hosts = flooders(live, 3)
    # 3 Workers × 6 subrequests: 12 open at once by the versions' bound (4 each), 6 by the account's.
    floods = Floods(live, hosts, 6, "a")
    try:
        wait_until_held(live, server, 18)
        assert server.open() == {"a": ACCOUNT}
        # The shard has room for another account.
        neighbour_fetches(live)
    finally:
        server.call("/release")
        floods.join()
    # The waiting subrequests got their turn once the first ones ended.
    assert floods.outcomes == [{"slow": 6}] * 3
    assert server.peak() == {"a": ACCOUNT}
    live.wait_for(lambda: outbound(live) == {"open": 0, "waiting": 0, "accounts": 0})


def test_many_accounts_at_the_shard_ceiling_leave_a_newcomer_its_share(
    live: LivePlatform, server: SlowServer
) -> None:
    """One person's 4 accounts (2 Workers each) ask for 32 connections at once, more than the
    shard's 16. The first 8 are first come, first served; beyond them an account gets one only
    below its fair share of the other 8. Held that way, they leave room for an account that comes
    afterwards; a plain ceiling, first come first served, would let them take all 16 and the
    newcomer's fetch would wait for their slow answers."""
    server.call("/hold")
    tags = ["b", "c", "d", "e"]
    floods = [Floods(live, flooders(live, 2), 4, tag) for tag in tags]
    try:
        wait_until_held(live, server, 32)
        open_now = server.open()
        assert sum(open_now.values()) < SHARD, open_now
        assert all(count <= ACCOUNT for count in open_now.values()), open_now
        neighbour_fetches(live)
    finally:
        server.call("/release")
        for flood in floods:
            flood.join()
    for flood in floods:
        assert flood.outcomes == [{"slow": 4}] * 2
    live.wait_for(lambda: outbound(live) == {"open": 0, "waiting": 0, "accounts": 0})
