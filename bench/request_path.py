"""What each piece of the data plane's per-request path costs in workerd CPU (not run in CI).

    .venv/bin/python bench/request_path.py [--rounds 12] [--calls 2000]

One bare workerd runs a Worker that, per request, makes `--calls` sequential calls to a hello-world
Worker loaded with the Worker Loader, each the way one variant does it, and reads each answer's
body; the process's CPU time (utime + stime from /proc) ÷ calls is the variant's cost per call, with
no HTTP parsing or load generator in it. Variants alternate over `--rounds` rounds and each is
reported as the median of its difference from `direct` in the same round: on a shared machine the
CPU time of the same work changes far more from one minute to the next than between back-to-back
runs. The pieces are built as `runtime/dispatcher.js` builds them (`withClientMetadata` is the real
one, from `runtime/metadata.js`):

  direct       LOADER.get + getEntrypoint().fetch: the cross-isolate hop (the baseline)
  deadline     + AbortSignal.timeout and the body piped through an IdentityTransformStream
  metadata     + withClientMetadata (a new Request with the client's headers and request.cf)
  marks        + the start and end request marks on stdout (a pipe, as a shard's)
  dispatcher   all three
  read-whole   + the body read whole by a reader, at most 64 KiB (the bounded alternative to the
               deadline pipe)
  arrayBuffer  + the body read whole by arrayBuffer() (no bound on what it reads: shown for scale)
  prelude      the hello world wrapped by `withPrelude` (the wrapper main module, the prelude)
  prelude-base the same with the `tenant.js` given by --baseline-tenant (default: the same file,
               which shows the noise); e.g. `git show HEAD~1:src/mayfly/runtime/tenant.js`
  waitUntil    a hello world that hands ctx.waitUntil a resolved promise, wrapped (no Linger
  waitUntil-base stub here: the done call is left out), and the same with the baseline tenant.js
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKERD = ROOT / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
RUNTIME = ROOT / "src" / "mayfly" / "runtime"
VARIANTS = (
    "direct",
    "deadline",
    "metadata",
    "marks",
    "dispatcher",
    "read-whole",
    "arrayBuffer",
    "prelude",
    "prelude-base",
    "waitUntil",
    "waitUntil-base",
)

WORKER = r"""
import { withClientMetadata } from "./metadata.js";
import { withPrelude } from "./tenant.js";
import { withPrelude as withBasePrelude } from "./tenant_base.js";

const HELLO = `export default {
  async fetch(request, env) {
    const who = new URL(request.url).searchParams.get("name") ?? "world";
    return new Response(env.GREETING + ", " + who + "!\\n", {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};`;
const CODE = {
  compatibilityDate: "2025-01-01",
  mainModule: "index.js",
  modules: { "index.js": HELLO },
  env: { GREETING: "Hello" },
  globalOutbound: null,
};
const WAIT_UNTIL = HELLO.replace("async fetch(request, env) {", "async fetch(request, env, ctx) { ctx.waitUntil(Promise.resolve());");
const wrapped = (prelude, main) => ({
  ...CODE,
  ...prelude("index.js", { "index.js": { js: main } }, "esm", [], 30000, 30000),
});
const LOADED = {
  prelude: wrapped(withPrelude, HELLO),
  "prelude-base": wrapped(withBasePrelude, HELLO),
  waitUntil: wrapped(withPrelude, WAIT_UNTIL),
  "waitUntil-base": wrapped(withBasePrelude, WAIT_UNTIL),
};
const loaded = (name) => (env, request) => env.LOADER.get(name, () => LOADED[name]).getEntrypoint().fetch(request);
const MARK = "0123456789abcdef0123456789abcdef";
const VERSION = "00000000-0000-4000-8000-000000000000";
const BOUND = 64 * 1024;
let ids = 0;

const call = (env, request, init) => env.LOADER.get("hello", () => CODE).getEntrypoint().fetch(request, init);

// As response.js's runWithDeadline: one deadline signal for the call and the body's pipe.
async function withDeadline(env, request, ctx) {
  const deadline = AbortSignal.timeout(30000);
  const response = await call(env, request, { signal: deadline });
  if (response.body === null) return response;
  const length = Number(response.headers.get("content-length"));
  const { readable, writable } =
    Number.isSafeInteger(length) && length >= 0 && response.headers.has("content-length")
      ? new FixedLengthStream(length)
      : new IdentityTransformStream();
  ctx.waitUntil(response.body.pipeTo(writable, { signal: deadline }).catch(() => {}));
  return new Response(readable, response);
}

async function marked(work) {
  const id = String(++ids);
  console.log(`${MARK} + ${id} ${VERSION}`);
  try {
    return await work();
  } finally {
    console.log(`${MARK} - ${id}`);
  }
}

async function readWhole(env, request) {
  const deadline = AbortSignal.timeout(30000);
  const response = await call(env, request, { signal: deadline });
  const reader = response.body.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  deadline.addEventListener("abort", cancel);
  try {
    const chunks = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > BOUND) throw new Error("longer than the bound");
      chunks.push(value);
    }
    return new Response(chunks.length === 1 ? chunks[0] : new Blob(chunks), response);
  } finally {
    deadline.removeEventListener("abort", cancel);
  }
}

async function arrayBuffer(env, request) {
  const response = await call(env, request, { signal: AbortSignal.timeout(30000) });
  return new Response(await response.arrayBuffer(), response);
}

const VARIANTS = {
  direct: (env, request) => call(env, request),
  deadline: (env, request, ctx) => withDeadline(env, request, ctx),
  metadata: (env, request) => call(env, withClientMetadata(request, [])),
  marks: (env, request) => marked(() => call(env, request)),
  dispatcher: (env, request, ctx) => marked(() => withDeadline(env, withClientMetadata(request, []), ctx)),
  "read-whole": (env, request) => readWhole(env, request),
  arrayBuffer: (env, request) => arrayBuffer(env, request),
  prelude: loaded("prelude"),
  "prelude-base": loaded("prelude-base"),
  waitUntil: loaded("waitUntil"),
  "waitUntil-base": loaded("waitUntil-base"),
};

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const variant = VARIANTS[url.pathname.slice(1)];
    const calls = Number(url.searchParams.get("calls"));
    for (let i = 0; i < calls; i++) {
      const response = await variant(env, request, ctx);
      await response.arrayBuffer();
    }
    return new Response("ok\n");
  },
};
"""

CONFIG = """using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    ( name = "bench",
      worker = (
        modules = [
          (name = "bench.js", esModule = embed "bench.js"),
          (name = "tenant.js", esModule = embed "tenant.js"),
          (name = "metadata.js", esModule = embed "metadata.js"),
          (name = "tenant_base.js", esModule = embed "tenant_base.js"),
          (name = "d1.js", esModule = embed "d1.js"),
        ],
        compatibilityDate = "2025-11-01",
        bindings = [ (name = "LOADER", workerLoader = ()) ],
      )
    ),
  ],
  sockets = [ ( name = "http", address = "127.0.0.1:{port}", service = "bench", http = () ) ],
);
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument(
        "--baseline-tenant",
        type=Path,
        default=RUNTIME / "tenant.js",
        help="the tenant.js the -base variants wrap with (default: the current one)",
    )
    args = parser.parse_args()
    calls: int = args.calls
    with tempfile.TemporaryDirectory(prefix="mayfly-request-path-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        (workdir / "bench.js").write_text(WORKER)
        (workdir / "config.capnp").write_text(CONFIG.replace("{port}", str(port)))
        for module in ("tenant.js", "metadata.js", "d1.js"):
            shutil.copy(RUNTIME / module, workdir / module)
        shutil.copy(args.baseline_tenant, workdir / "tenant_base.js")
        process = subprocess.Popen(
            [str(WORKERD), "serve", "config.capnp", "--experimental"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        # The marks' lines go to a pipe, as a shard's do; the last output is kept for errors.
        output = process.stdout.fileno()
        tail: collections.deque[bytes] = collections.deque(maxlen=4)
        drain = threading.Thread(
            target=lambda: tail.extend(iter(lambda: os.read(output, 65536), b""))
        )
        drain.start()
        try:
            deadline = time.monotonic() + 30
            while not listening(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("workerd did not start")
                time.sleep(0.05)

            def run(variant: str) -> float:
                before = cpu_seconds(process.pid)
                url = f"http://127.0.0.1:{port}/{variant}?calls={calls}"
                try:
                    with urllib.request.urlopen(url, timeout=300) as answer:
                        answer.read()
                except OSError as exc:
                    said = b"".join(tail).decode(errors="replace")
                    raise SystemExit(f"{variant}: {exc}\n{said}") from exc
                return (cpu_seconds(process.pid) - before) / calls * 1e6

            for variant in VARIANTS:
                run(variant)  # warm up
            cost: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    cost[variant].append(run(variant))
        finally:
            process.kill()
            process.wait()
            drain.join()
    print(
        f"µs of workerd CPU per call, {calls} calls × {args.rounds} rounds "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    print(f"  {'variant':14} {'median':>7} {'Δ direct':>9}  (Δ: median of same-round differences)")
    for variant in VARIANTS:
        delta = statistics.median(a - b for a, b in zip(cost[variant], cost["direct"], strict=True))
        print(f"  {variant:14} {statistics.median(cost[variant]):7.0f} {delta:+9.0f}")
    for new, base in (("prelude", "prelude-base"), ("waitUntil", "waitUntil-base")):
        pairs = list(zip(cost[new], cost[base], strict=True))
        delta = statistics.median(a - b for a, b in pairs)
        print(f"  {new} − {base}: {delta:+.1f} µs (median of same-round differences)")


if __name__ == "__main__":
    main()
