"""How long a static-assets upload of --files files takes, as wrangler sends it (target: 1,000 files
in under 2 s on SQLite).

A real `mayfly serve` (SQLite, API only) on free ports and a temporary account. The upload is
wrangler's: one upload session (AS1) with the whole manifest, then the buckets it answers (20 files
each) as base64 multipart requests, 3 at a time (wrangler's BULK_UPLOAD_CONCURRENCY), until the
server answers the completion token. Printed: seconds from the session to the completion token, and
files per second, median of --rounds rounds (each a new site, so nothing is deduplicated).

    .venv/bin/python bench/assets_upload.py [--files 1000] [--bytes 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from blake3 import blake3

from mayfly.sdk import pow

MAYFLY = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "mayfly"
CONCURRENCY = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [str(MAYFLY), "serve", "--api-port", str(port), "--workers-port", str(free_port())]
    args += ["--data-dir", str(directory / "data"), "--runtime", "false"]
    args += ["--pow-k", "8", "--pow-g", "50", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYFLY_")}
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("mayfly serve did not start: " + (directory / "server.log").read_text())


def provision(api: httpx.Client) -> dict[str, Any]:
    challenge = api.post("provisioning/previews/challenge", content="{}").json()["result"]
    seed = pow.b64url_decode(challenge["seed"])
    solution = base64.b64encode(pow.solve(seed, challenge["k"], challenge["g"])).decode()
    created = api.post(
        "provisioning/previews",
        json={
            "acceptTermsOfService": "yes",
            "challengeToken": challenge["challengeToken"],
            "solution": {"checkpoints": solution},
        },
    )
    created.raise_for_status()
    account: dict[str, Any] = created.json()["result"]["account"]
    return account


def wrangler_hash(data: bytes, path: str) -> str:
    extension = path.rpartition(".")[2] if "." in path.rsplit("/", 1)[-1] else ""
    return blake3((base64.b64encode(data).decode() + extension).encode()).hexdigest()[:32]


def site(files: int, size: int) -> dict[str, bytes]:
    return {f"/page-{i}.html": secrets.token_bytes(size) for i in range(files)}


def upload(url: str, account: dict[str, Any], files: dict[str, bytes], script: str) -> float:
    by_hash = {wrangler_hash(data, path): data for path, data in files.items()}
    manifest = {p: {"hash": wrangler_hash(d, p), "size": len(d)} for p, d in files.items()}
    with httpx.Client(base_url=url + "/client/v4/", timeout=120) as api:
        started = time.monotonic()
        session = api.post(
            f"accounts/{account['id']}/workers/scripts/{script}/assets-upload-session",
            headers={"authorization": f"Bearer {account['apiToken']}"},
            json={"manifest": manifest},
        )
        session.raise_for_status()
        result = session.json()["result"]

        def send(bucket: list[str]) -> str | None:
            parts = [(h, (h, base64.b64encode(by_hash[h]), "text/html")) for h in bucket]
            response = api.post(
                f"accounts/{account['id']}/workers/assets/upload?base64=true",
                headers={"authorization": f"Bearer {result['jwt']}"},
                files=parts,
            )
            if response.status_code not in (201, 202):
                raise RuntimeError(f"{response.status_code}: {response.text}")
            token: str | None = response.json()["result"]["jwt"]
            return token

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            tokens = [t for t in pool.map(send, result["buckets"]) if t]
        elapsed = time.monotonic() - started
    if len(tokens) != 1:
        raise RuntimeError(f"expected one completion token, got {len(tokens)}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--bytes", type=int, default=2048, help="size of each file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mayfly-bench-assets-") as tmp:
        process, url = start_server(Path(tmp))
        try:
            with httpx.Client(base_url=url + "/client/v4/", timeout=60) as api:
                account = provision(api)
            times, cpu = [], []
            for round_ in range(args.rounds):
                files = site(args.files, args.bytes)
                before = cpu_seconds(process.pid)
                times.append(upload(url, account, files, f"site-{round_}"))
                cpu.append(cpu_seconds(process.pid) - before)
                print(
                    f"round {round_ + 1}: {times[-1]:.2f} s, server CPU {cpu[-1]:.2f} s",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(timeout=30)
    median = statistics.median(times)
    print(
        f"{args.files} files of {args.bytes} bytes: {median:.2f} s (median of {args.rounds}),"
        f" {args.files / median:.0f} files/s, server CPU {statistics.median(cpu):.2f} s;"
        f" target < 2 s for 1,000 (load average now {os.getloadavg()[0]:.1f})"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (what load on the machine does not
    inflate, unlike wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
