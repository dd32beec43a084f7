"""A Worker floods a slow public-looking HTTP server with concurrent fetch()es while a hello-world
neighbour is requested in a loop: connections the server saw at once, shard kills, the neighbour's
answers (docs/dataplane.md, "Outbound limits"). Not run in CI: it needs root to give the slow
server a public-looking address (198.51.100.1) in a network namespace of its own (a veth pair and
one /32 route, removed at the end). tests/attacks/test_subrequests.py checks the bounds.

    sudo .venv/bin/python bench/outbound_flood.py [--floods 50] [--per-flood 500] [--seconds 20]
        [--subrequests 1000] [--outbound-connections 64]

Before the bounds (globalOutbound = public-net): up to 15,573 connections at once from one shard,
4-5 kills; after: 64, no kill.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.harness import LivePlatform, platform_settings

NS, ADDRESS, HOST_END, NS_END = "mfslow", "198.51.100.1", "mfv0", "mfv1"
SLOW_SERVER = """
import asyncio, resource, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
open_now = peak = total = 0
async def handle(reader, writer):
    global open_now, peak, total
    open_now += 1; total += 1; peak = max(peak, open_now)
    try:
        await reader.readuntil(b"\\r\\n\\r\\n")
        await asyncio.sleep(float(sys.argv[1]))
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\nConnection: close\\r\\n\\r\\nslow")
        await writer.drain()
    except Exception:
        pass
    finally:
        open_now -= 1
        writer.close()
async def main():
    await asyncio.start_server(handle, sys.argv[2], 80, backlog=4096)
    while True:
        await asyncio.sleep(0.5)
        print(f"{open_now} {peak} {total}", flush=True)
asyncio.run(main())
"""
FLOODER = """
export default {
  async fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n"));
    const ended = await Promise.allSettled(
      Array.from({ length: n }, () => fetch("http://ADDRESS/").then((r) => r.text())));
    const outcome = {};
    for (const r of ended) {
      const key = r.status === "fulfilled" ? "ok" : String(r.reason);
      outcome[key] = (outcome[key] ?? 0) + 1;
    }
    return Response.json(outcome);
  },
};
""".replace("ADDRESS", ADDRESS)
GOOD = 'export default { fetch() { return new Response("good"); } };'


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def namespace_up() -> None:
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", HOST_END, "type", "veth", "peer", "name", NS_END)
    sh("ip", "link", "set", NS_END, "netns", NS)
    sh("ip", "link", "set", HOST_END, "up")
    sh("ip", "route", "add", f"{ADDRESS}/32", "dev", HOST_END)
    sh("ip", "-n", NS, "link", "set", "lo", "up")
    sh("ip", "-n", NS, "addr", "add", f"{ADDRESS}/32", "dev", NS_END)
    sh("ip", "-n", NS, "link", "set", NS_END, "up")
    sh("ip", "-n", NS, "route", "add", "default", "dev", NS_END)


def namespace_down() -> None:
    subprocess.run(["ip", "link", "del", HOST_END], check=False)
    subprocess.run(["ip", "netns", "del", NS], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--floods", type=int, default=50)
    parser.add_argument("--per-flood", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--delay", type=float, default=25.0, help="the slow server's answer time")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--subrequests", type=int, default=1000)
    parser.add_argument("--outbound-connections", type=int, default=64)
    args = parser.parse_args()
    namespace_up()
    server = subprocess.Popen(
        ["ip", "netns", "exec", NS, sys.executable, "-c", SLOW_SERVER, str(args.delay), ADDRESS],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = {"peak": 0, "total": 0}

    def watch() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            _, peak, total = (int(x) for x in line.split())
            seen.update(peak=peak, total=total)

    threading.Thread(target=watch, daemon=True).start()
    settings = platform_settings(
        Path(tempfile.mkdtemp(prefix="outbound-flood")),
        shards=args.shards,
        subrequests=args.subrequests,
        outbound_connections=args.outbound_connections,
    )
    live = LivePlatform(settings)
    try:
        bad_account, good_account = live.provision(), live.provision()
        live.deploy(bad_account, "flood", FLOODER)
        live.deploy(good_account, "good", GOOD)
        bad, good = live.host(bad_account, "flood"), live.host(good_account, "good")
        floods: Counter[str] = Counter()

        def flood() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=120)
            try:
                conn.request("GET", f"/?n={args.per_flood}", headers={"Host": bad})
                response = conn.getresponse()
                body = response.read()
                if response.status == 200:
                    floods.update(json.loads(body))
                else:
                    floods[f"HTTP {response.status}"] += 1
            except (OSError, http.client.HTTPException) as exc:
                floods[type(exc).__name__] += 1

        threads = [threading.Thread(target=flood) for _ in range(args.floods)]
        for thread in threads:
            thread.start()
            time.sleep(0.25)
        answers: Counter[int | None] = Counter()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            answers[live.status(good, timeout=5)] += 1
        for thread in threads:
            thread.join()
        kills = Counter(e.kind for e in live.supervisor.events if e.kind != "started")
        print(f"slow server: {seen['peak']} connections at once, {seen['total']} in all")
        print(f"shard events: {dict(kills)}")
        print(f"neighbour: {answers[200]} answered 200, {sum(answers.values()) - answers[200]} not")
        print(f"flooder's subrequests: {dict(floods)}")
    finally:
        live.close()
        server.terminate()
        namespace_down()


if __name__ == "__main__":
    main()
