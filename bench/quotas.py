"""What quota checks cost a KV write, as the account grows.

An in-process control plane on SQLite (the services, no HTTP). One permanent account is filled
with N KV keys of 100 bytes (straight SQL, so that filling is quick), then single `put`s (a new
key each time) are timed alternately with the quota checks on and with them switched off
(`KVBudget` a no-op), `--puts` of each per size; the median latencies and their ratio are
printed. The checks are SQL aggregates over the account's rows (COUNT of live keys, SUM of their
sizes, plus the code and asset sums), so their cost grows with the account; a bulk write counts
once per transaction.

    .venv/bin/python bench/quotas.py [--sizes 1000,10000,100000] [--puts 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.clock

from sqlalchemy import insert
from tests.clock import ManualClock

from mayfly.app import Platform
from mayfly.services.resources import quotas
from mayfly.settings import Settings
from mayfly.storage.tables import kv_entries


def fill(platform: Platform, account_id: str, namespace_id: str, start: int, stop: int) -> None:
    rows = [
        {
            "namespace_id": namespace_id,
            "key": f"fill-{i:08d}",
            "account_id": account_id,
            "value": b"v" * 100,
            "metadata": None,
            "expiration": None,
        }
        for i in range(start, stop)
    ]
    with platform.db.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(insert(kv_entries), rows[chunk : chunk + 5000])


class NoBudget:
    def __init__(self, *args: Any) -> None:
        pass

    def admit(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--puts", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), runtime=False, quota_kv_keys_permanent=10**9)
        platform = Platform.create(settings, clock=ManualClock())
        account, _ = platform.services.accounts.create_permanent("bench")
        kv = platform.services.kv
        namespace_id = kv.create_namespace(account, "bench", "bench")["id"]
        real = quotas.KVBudget
        filled, n = 0, 0
        print(f"{'keys':>8} {'with checks':>12} {'without':>10} {'ratio':>6}")
        for size in sizes:
            fill(platform, account.id, namespace_id, filled, size)
            filled = size
            timings: dict[str, list[float]] = {"with": [], "without": []}
            for _ in range(args.puts):
                for mode in ("with", "without"):
                    quotas.KVBudget = real if mode == "with" else NoBudget  # type: ignore[misc]
                    n += 1
                    started = time.perf_counter()
                    kv.put(account, namespace_id, f"new-{n:08d}", b"x" * 100)
                    timings[mode].append(time.perf_counter() - started)
            quotas.KVBudget = real  # type: ignore[misc]
            with_ms = statistics.median(timings["with"]) * 1000
            without_ms = statistics.median(timings["without"]) * 1000
            print(f"{size:>8} {with_ms:>10.2f}ms {without_ms:>8.2f}ms {with_ms / without_ms:>6.2f}")
        platform.db.dispose()


if __name__ == "__main__":
    main()
