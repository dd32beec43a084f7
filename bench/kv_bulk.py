"""How long a KV bulk write of --keys keys holds the write lock, against the same keys written one
put at a time, in the same run (in process, SQLite). The bulk is one transaction (all or nothing)
with batched DELETE … RETURNING and INSERTs; printed: both times and their ratio.

    .venv/bin/python bench/kv_bulk.py [--keys 10000] [--bytes 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mayfly.app import Platform
from mayfly.services.resources.kv import BulkItem
from mayfly.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--bytes", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        platform = Platform.create(Settings(data_dir=Path(directory), runtime=False))
        kv = platform.services.kv
        account, _ = platform.services.accounts.create_permanent("bench")
        items = [BulkItem(f"key-{i:06d}", b"v" * args.bytes) for i in range(args.keys)]

        one_by_one = kv.create_namespace(account, "one-by-one", "bench")["id"]
        start = time.perf_counter()
        for item in items:
            kv.put(account, one_by_one, item.key, item.value)
        singles = time.perf_counter() - start

        bulk = kv.create_namespace(account, "bulk", "bench")["id"]
        start = time.perf_counter()
        kv.put_many(account, bulk, items)
        batched = time.perf_counter() - start
        platform.db.dispose()
    print(f"{args.keys} keys of {args.bytes} bytes")
    print(f"  one put each : {singles:8.2f} s")
    print(f"  one bulk     : {batched:8.2f} s  ({singles / batched:.1f}x faster)")


if __name__ == "__main__":
    main()
