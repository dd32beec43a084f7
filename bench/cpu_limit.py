"""What --cpu-limit-ms really bounds, and what attribution costs (not run in CI).

1. The bound: a Worker spins (`while (true) {}`); measured from the moment the supervisor read its
   request's start mark (the loop starts right after) to the shard's SIGKILL, and to its
   replacement serving, for each CPU limit asked. The limit itself is the baseline printed next
   to each figure.
2. The marks' cost: requests/s of a hello-world Worker through the data plane with wrk, with the
   dispatcher's per-request marks on stdout and without them (the shard gets no mark secret), in
   the same run.

    .venv/bin/python bench/cpu_limit.py [--runs 8] [--limits 500,1500,3000] [--seconds 5]
                                   [--rate-runs 4]
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.harness import LivePlatform, platform_settings

SPIN = "export default { fetch() { while (true) {} } };"
HELLO = "export default { fetch() { return new Response('hello'); } };"


def measure_bound(limit_ms: int, runs: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        live = LivePlatform(platform_settings(Path(tmp), cpu_limit_ms=limit_ms))
        try:
            account = live.provision()
            live.deploy(account, "spin", SPIN)
            host = live.host(account, "spin")
            to_kill: list[float] = []
            to_serving: list[float] = []
            for _ in range(runs):
                live.wait_for(lambda: len(live.shards()) == live.settings.shards, 30)
                shards = live.shards()
                seen = len(live.supervisor.events)
                threading.Thread(target=live.status, args=(host, 30), daemon=True).start()
                live.wait_for(lambda shards=shards: any(s.in_flight for s in shards), 30)
                frozen = next(s for s in shards if s.in_flight)
                started = next(iter(frozen.in_flight.values())).at

                def killed(seen: int = seen, pid: int = frozen.pid) -> bool:
                    return any(
                        e.kind == "unresponsive" and e.pid == pid
                        for e in live.supervisor.events[seen:]
                    )

                live.wait_for(killed, 60)
                kill = next(e for e in live.supervisor.events[seen:] if e.kind == "unresponsive")
                live.wait_for(
                    lambda seen=seen, slot=kill.slot: any(
                        e.kind == "started" and e.slot == slot
                        for e in live.supervisor.events[seen:]
                    ),
                    30,
                )
                back = next(
                    e
                    for e in live.supervisor.events[seen:]
                    if e.kind == "started" and e.slot == kill.slot
                )
                to_kill.append(kill.at - started)
                to_serving.append(back.at - started)
                time.sleep(0.5)
            return to_kill, to_serving
        finally:
            live.close()


def requests_per_second(marks: bool, seconds: int) -> float:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed")
    patch = (
        mock.patch("mayfly.runtime.shard.MARK_ENV_VAR", "MAYFLY_NO_MARK")
        if not marks
        else mock.patch.dict({})
    )
    with tempfile.TemporaryDirectory() as tmp, patch:
        live = LivePlatform(platform_settings(Path(tmp)))
        try:
            account = live.provision()
            live.deploy(account, "hello", HELLO)
            host = live.host(account, "hello")
            for _ in range(20):
                live.status(host)
            done = subprocess.run(
                [wrk, "-t2", "-c16", f"-d{seconds}s", "-H", f"Host: {host}",
                 f"http://127.0.0.1:{live.port}/"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
            assert found, done.stdout
            marked = sum(s.marks_seen for s in live.shards())
            assert (marked > 0) == marks, "the marks were not as asked"
            return float(found.group(1))
        finally:
            live.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--limits", default="500,1500,3000")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rate-runs", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print("CPU limit: from the spinning request's start to its shard's SIGKILL / replacement")
    for limit_ms in (int(x) for x in args.limits.split(",")):
        kill, serving = measure_bound(limit_ms, args.runs)
        print(
            f"  --cpu-limit-ms {limit_ms:>5}: kill p50 {statistics.median(kill):.2f} s "
            f"max {max(kill):.2f} s ({max(kill) / (limit_ms / 1000):.2f}x the limit); "
            f"replacement serving p50 {statistics.median(serving):.2f} s "
            f"max {max(serving):.2f} s (n={len(kill)})"
        )
    with_marks: list[float] = []
    without: list[float] = []
    for _ in range(args.rate_runs):  # alternated: the machine's load drifts
        with_marks.append(requests_per_second(True, args.seconds))
        without.append(requests_per_second(False, args.seconds))
    ratio = statistics.median(with_marks) / statistics.median(without)
    print(
        f"Marks' cost (wrk -c16, hello world): {statistics.median(with_marks):.0f} req/s with "
        f"marks, {statistics.median(without):.0f} without: {ratio:.2f}x (medians of "
        f"{args.rate_runs} alternated runs)"
    )


if __name__ == "__main__":
    main()
