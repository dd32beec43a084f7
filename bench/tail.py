"""What a live tail costs: req/s of one Worker bare, through Mayfly untailed, and while tailed.

The Worker logs one line per request and answers "hello". Three targets, measured alternately in
the same run (order rotated each round, median of the rounds):

  bare      the Worker as a plain workerd service: no dispatcher, no loader, no platform;
  untailed  the Worker deployed on Mayfly (real control plane, real shard): the route says nobody
            tails it, so it runs without a tail;
  tailed    the same Worker while a tail session is open (the API's tail, a WebSocket client
            reading every event): a second isolate with a TailSink, events batched to the
            control plane and fanned out to the session.

Load: wrk with --connections keep-alive connections on one thread for --seconds, after a 1 s
warm-up of each target. Shards default to 1, to compare one workerd process with one.

    .venv/bin/python bench/tail.py [--rounds 3] [--seconds 5] [--connections 32] [--shards 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import auth
from tests.runtime.harness import LivePlatform, platform_settings

from mayfly.runtime.workerd import find_workerd

WORKER = """
export default {
  async fetch(request) {
    console.log("request", new URL(request.url).pathname);
    return new Response("hello");
  },
};
"""

BARE_CONFIG = """using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = (
    modules = [ (name = "index.js", esModule = embed "index.js") ],
    compatibilityDate = "2025-01-01",
  )) ],
  sockets = [ (name = "http", address = "127.0.0.1:%d", http = (), service = "main") ],
);
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def bare_workerd(directory: Path) -> Iterator[int]:
    """The Worker alone in a workerd process of its own; yields its port."""
    port = free_port()
    (directory / "index.js").write_text(WORKER)
    (directory / "bare.capnp").write_text(BARE_CONFIG % port)
    process = subprocess.Popen(
        [str(find_workerd()), "serve", "bare.capnp"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the bare workerd did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class TailSession:
    """A tail opened through the API and a WebSocket reader counting the events it receives."""

    def __init__(self, live: LivePlatform, account: dict[str, str], script: str):
        self.live, self.account, self.script = live, account, script
        response = live.api.post(
            f"accounts/{account['id']}/workers/scripts/{script}/tails",
            headers=auth(account["apiToken"]),
            json={"filters": []},
        )
        created = response.json()["result"]
        self.id = created["id"]
        url = urlsplit(created["url"])._replace(netloc=f"127.0.0.1:{live.public_port}").geturl()
        self.events = 0
        self._stop = threading.Event()
        self._ws = connect(url, subprotocols=["trace-v1"], max_queue=None)
        self._ws.__enter__()
        self._ws.send(json.dumps({"debug": False}))
        self._reader = threading.Thread(target=self._read)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self._ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return
            self.events += 1

    def close(self) -> None:
        self._stop.set()
        self._reader.join(10)
        self._ws.__exit__(None, None, None)
        self.live.api.delete(
            f"accounts/{self.account['id']}/workers/scripts/{self.script}/tails/{self.id}",
            headers=auth(self.account["apiToken"]),
        )


def wrk(port: int, host: str, seconds: float, connections: int) -> tuple[float, int, str]:
    """req/s, completed requests and problems (non-2xx, socket errors) of one wrk run."""
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-H",
            f"Host: {host}",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", done).group(1))  # type: ignore[union-attr]
    problems = "; ".join(
        line.strip() for line in done.splitlines() if "Non-2xx" in line or "Socket errors" in line
    )
    return rate, count, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  (log) %(message)s")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    with tempfile.TemporaryDirectory() as tmp, bare_workerd(Path(tmp)) as bare_port:
        live = LivePlatform(platform_settings(Path(tmp) / "platform", shards=args.shards))
        try:
            account = live.provision()
            live.deploy(account, "logger", WORKER)
            host = live.host(account, "logger")
            results: dict[str, list[float]] = {"bare": [], "untailed": [], "tailed": []}
            events: list[tuple[int, int, int]] = []  # requests, events received, tail POSTs
            print(
                f"Tail cost: wrk -t1 -c{args.connections} -d{args.seconds:g}s, "
                f"{args.rounds} rounds, {args.shards} shard(s); the Worker logs one line per request"
            )
            order = ["bare", "untailed", "tailed"]
            for n in range(args.rounds):
                for target in order[n % 3 :] + order[: n % 3]:
                    tail = TailSession(live, account, "logger") if target == "tailed" else None
                    port = bare_port if target == "bare" else live.port
                    try:
                        wrk(port, host, 1, args.connections)  # warm-up (and the tail isolate)
                        time.sleep(0.5)  # the warm-up's last tail events
                        posts_before = live.internal.paths.count("/internal/v1/tail-events")
                        events_before = tail.events if tail else 0
                        rate, count, problems = wrk(port, host, args.seconds, args.connections)
                        if tail is not None:
                            time.sleep(0.5)  # the last batch
                            events.append(
                                (
                                    count,
                                    tail.events - events_before,
                                    live.internal.paths.count("/internal/v1/tail-events")
                                    - posts_before,
                                )
                            )
                    finally:
                        if tail is not None:
                            tail.close()
                    results[target].append(rate)
                    extra = f"  ({problems})" if problems else ""
                    print(f"  round {n + 1} {target:9} {rate:9,.0f} req/s{extra}")
        finally:
            live.close()

    medians = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(f"{'target':10} {'median req/s':>13} {'vs bare':>8} {'vs untailed':>12}   rounds")
    for target, rate in medians.items():
        rounds = " / ".join(f"{r:,.0f}" for r in results[target])
        print(
            f"{target:10} {rate:13,.0f} {rate / medians['bare']:8.2f} "
            f"{rate / medians['untailed']:12.2f}   {rounds}"
        )
    for count, received, posts in events:
        print(
            f"tailed run: {count:,} requests, {received:,} events received by the session, "
            f"{posts:,} POSTs to the control plane ({count / max(posts, 1):,.0f} events per POST)"
        )


if __name__ == "__main__":
    main()
