"""What detecting a Worker's handlers costs at upload for a large main module (--megabytes of
generated, valid JavaScript ending in `export default {fetch, scheduled}`), in the same run: the
old regex scan (the baseline); tree-sitter in this process (parse_handlers); detect_handlers as
uploads call it (a child process over 256 KiB); esbuild with a metafile (a subprocess; its
metafile lists the module's export names, `default`, not the default export's handlers).
Printed for each: CPU seconds of this process and its children, the ratio to the regex's, the
longest stall of a thread ticking every 5 ms meanwhile (what the event loop would feel: the GIL
held), and what it found.

    .venv/bin/python bench/handlers.py [--megabytes 9.5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mayfly.services.workers.handlers import HANDLER_NAMES, detect_handlers, parse_handlers

ROOT = Path(__file__).resolve().parent.parent
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"

CHUNK = """
// part {n}: a little of everything a bundler emits /* with }} and {{ in comments */
const table{n} = {{ name: "item-{n}", pattern: /[a-z]+\\/{{2}}(?:fetch|x)/gi, size: {n} * 2 }};
class Store{n} extends Map {{
  constructor(limit = {n}) {{ super(); this.limit = limit; this.label = `store ${{limit}} {{}}`; }}
  async load(key) {{ const found = await fetch(`https://example.com/${{key}}?n={n}`); return found.json(); }}
  get size{n}() {{ return this.size / 2; }}
}}
function helper{n}(a, b) {{
  const text = 'it\\'s "quoted" }} {{ (' + a;
  return b ? text.replace(/\\s+/g, " ") : [a, b].map((x) => x ?? {n}).filter(Boolean);
}}
export const value{n} = helper{n}(table{n}.name, new Store{n}().limit > 3);
"""
TAIL = 'export default { async fetch(request) { return new Response("ok"); }, scheduled() {} };\n'


def generated(megabytes: float) -> bytes:
    parts, size, n = [], 0, 0
    while size < megabytes * 1_000_000:
        part = CHUNK.format(n=n)
        parts.append(part)
        size += len(part)
        n += 1
    return ("".join(parts) + TAIL).encode()


def regex_scan(source: bytes) -> list[str]:
    """The detector before tree-sitter: any `name(` or `name:` anywhere."""
    text = source.decode("utf-8", "replace")
    return [h for h in HANDLER_NAMES if re.search(rf"\b{h}\s*(\(|:)", text)]


def esbuild_exports(source: bytes) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        entry, meta = Path(directory) / "main.js", Path(directory) / "meta.json"
        entry.write_bytes(source)
        subprocess.run(
            [
                str(ESBUILD),
                str(entry),
                "--format=esm",
                f"--outfile={Path(directory) / 'out.js'}",
                f"--metafile={meta}",
                "--log-level=error",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        inputs = json.loads(meta.read_text())["outputs"]
        return sorted({e for output in inputs.values() for e in output.get("exports", [])})[:5]


def measured(
    run: Callable[[bytes], list[str]], source: bytes, runs: int
) -> tuple[float, float, Any]:
    """Best CPU seconds (user+system, self and children) and the longest 5 ms-ticker stall."""
    best, stall, found = float("inf"), 0.0, None
    for _ in range(runs):
        done = threading.Event()
        gaps: list[float] = [0.0]

        def tick(done: threading.Event = done, gaps: list[float] = gaps) -> None:
            last = time.perf_counter()
            while not done.wait(0.005):
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = threading.Thread(target=tick)
        ticker.start()
        before = os.times()
        found = run(source)
        after = os.times()
        done.set()
        ticker.join()
        best = min(best, sum(after[i] - before[i] for i in range(4)))
        stall = max(stall, max(gaps))
    return best, stall, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=9.5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    source = generated(args.megabytes)
    print(f"module: {len(source) / 1e6:.1f} MB; best CPU of {args.runs} runs; longest stall")
    ways: list[tuple[str, Callable[[bytes], list[str]]]] = [
        ("regex (old)", regex_scan),
        ("tree-sitter in process", parse_handlers),
        ("detect_handlers (child)", detect_handlers),
    ]
    if ESBUILD.exists():
        ways.append(("esbuild metafile", esbuild_exports))
    baseline = 0.0
    for name, way in ways:
        spent, stall, found = measured(way, source, args.runs)
        baseline = baseline or spent
        print(
            f"{name:24} {spent:6.2f} s CPU {spent / baseline:4.1f}x  stall {stall:5.2f} s  {found}"
        )


if __name__ == "__main__":
    main()
