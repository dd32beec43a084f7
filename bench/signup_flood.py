"""What a sign-up flood does to another tenant: its API p50 idle and during the flood, as a ratio.

A real `mayfly serve` (API only, real argon2, trusting 127.0.0.1 as a proxy so that the flood can
come from many addresses); one tenant reads its KV namespaces in a loop while a separate process
posts sign-up forms from --threads threads (half from one address, half from a new one each time).

    .venv/bin/python bench/signup_flood.py [--seconds 8] [--threads 12] [--src OTHER_TREE/src]

--src runs the server from another checkout's sources (e.g. a tree from before the limits) to
compare; that tree's `serve` must accept the flags used here (it is started without
--forwarded-allow-ips when it has no such setting).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.abuse.live_server import live_server  # noqa: E402


def p50(client: httpx.Client, url: str, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--src", type=Path, help="run the server from these sources")
    args = parser.parse_args()
    if args.src:
        os.environ["PYTHONPATH"] = f"{args.src.resolve()}{os.pathsep}{ROOT}"
    flags: tuple[str, ...] = ()
    settings = (args.src or ROOT / "src") / "mayfly" / "settings.py"
    if "forwarded_allow_ips" in settings.read_text():
        flags = ("--forwarded-allow-ips", "127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp), *flags) as server:
        tenant = server.provision()
        url = f"{server.api_url}/client/v4/accounts/{tenant['id']}/storage/kv/namespaces"
        headers = {"authorization": f"Bearer {tenant['apiToken']}"}
        with httpx.Client(headers=headers, timeout=60) as api:
            p50(api, url, 5)
            idle = p50(api, url, 40)
            flood = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.abuse.signup_flood",
                    server.api_url,
                    str(args.seconds),
                    str(args.threads),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(min(2.0, args.seconds / 4))
            during = p50(api, url, 40)
            output, _ = flood.communicate(timeout=args.seconds + 300)
    statuses = json.loads(output)
    print(f"server sources: {args.src or ROOT / 'src'}")
    print(f"tenant p50 idle:         {idle * 1000:8.1f} ms")
    print(f"tenant p50 during flood: {during * 1000:8.1f} ms  ({during / idle:.1f}x idle)")
    print(f"flood answers: {dict(sorted(statuses.items()))}")


if __name__ == "__main__":
    main()
