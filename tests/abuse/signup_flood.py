"""A sign-up flood, run as its own process so that it does not share the measuring test's GIL.

python -m tests.abuse.signup_flood API_URL SECONDS THREADS [PAUSE]  → prints {"status": count, …}
("flooding" on stderr once the first sign-up was answered.)
Half the threads post from one address, half from a new address each time (X-Forwarded-For, for
a server that trusts the local proxy); each thread waits PAUSE seconds (default 0.05) between
posts, so that the flood tests what sign-ups cost rather than how many requests per second one
Python process can parse.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
from collections import Counter

import httpx

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def flood(api_url: str, seconds: float, threads: int, pause: float = 0.05) -> Counter[int]:
    statuses: Counter[int] = Counter()
    numbers = itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        with httpx.Client(base_url=api_url, timeout=60) as browser:
            token = CSRF_RE.search(browser.get("/signup").text)
            assert token is not None
            while time.monotonic() < deadline:
                n = next(numbers)
                address = "198.51.100.7" if index % 2 else f"10.{n // 250}.{n % 250}.1"
                response = browser.post(
                    "/signup",
                    data={
                        "csrf_token": token.group(1),
                        "email": f"flood{n}@example.com",
                        "password": "a long and uncommon passphrase 42",
                    },
                    headers={"x-forwarded-for": address},
                )
                browser.cookies.delete("mayfly_session")  # stay anonymous: the token still fits
                with lock:
                    if not statuses:
                        print("flooding", file=sys.stderr, flush=True)
                    statuses[response.status_code] += 1
                time.sleep(pause)

    running = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return statuses


if __name__ == "__main__":
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
    counts = flood(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), pause)
    print(json.dumps({str(k): v for k, v in counts.items()}))
