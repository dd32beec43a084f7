"""When the supervisor's time limits cut in, against fake workerds (not run in CI;
tests/runtime/test_supervisor.py checks what happens at each limit, this measures when).

Each figure is the median of --runs, printed with the limit it should match and their ratio:

  start          a shard that starts normally: seconds to ready (the baseline: nothing waited for);
  startup        a shard that never reports listening, startup_timeout 0.5 s: seconds to the
                 ShardStartError (≈ 1× the timeout);
  no-ack         two shards that never acknowledge an invalidation, invalidate_timeout 1 s,
                 stall_timeout 1.2 s: seconds until invalidate returns (the first unanswered ask
                 is starvation until stall_timeout has passed, so it is asked again: ≈ 2× the
                 invalidate timeout);
  stop           a shard that ignores SIGTERM, drain_grace 0.5 s: seconds stop takes (≈ 1× the
                 grace, then the kill);
  stall          a shard that stops answering without burning CPU, stall_timeout 2 s: seconds
                 from the stall to its kill (≈ 1× the stall timeout, plus at most a probe);
  backoff        a shard that crashes as soon as it is ready, max_backoff 0.4 s: the gaps between
                 its starts (each wait doubles from 0.1 s up to the cap, plus a start each).

    .venv/bin/python bench/supervision.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.test_supervisor import fake, limits

from mayfly.runtime.sandbox import Sandbox
from mayfly.runtime.shard import ShardLauncher, ShardStartError
from mayfly.runtime.supervisor import Supervisor


def launcher(directory: Path, listener: socket.socket, command: tuple[str, ...]) -> ShardLauncher:
    config = directory / "shard.capnp"
    config.write_text("# the fakes ignore it\n")
    admin_dir = directory / "admin"
    admin_dir.mkdir(mode=0o700, exist_ok=True)
    return ShardLauncher(
        command=command,
        config=config,
        sandbox=Sandbox.none(),
        env={"MAYFLY_INTERNAL_SECRET": "s"},
        admin_dir=admin_dir,
        listener=listener,
    )


def measure(
    command: tuple[str, ...],
    count: int,
    scenario: Callable[[Supervisor], Awaitable[float]],
    **overrides: Any,
) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        socket.create_server(("127.0.0.1", 0)) as listener,
    ):
        supervisor = Supervisor(launcher(Path(tmp), listener, command), count, limits(**overrides))

        async def run() -> float:
            try:
                return await scenario(supervisor)
            finally:
                await supervisor.stop()

        return asyncio.run(run())


async def start(supervisor: Supervisor) -> float:
    started = time.monotonic()
    await supervisor.start()
    return time.monotonic() - started


async def startup(supervisor: Supervisor) -> float:
    started = time.monotonic()
    try:
        await supervisor.start()
    except ShardStartError:
        return time.monotonic() - started
    raise AssertionError("a silent shard started")


async def no_ack(supervisor: Supervisor) -> float:
    await supervisor.start()
    started = time.monotonic()
    await supervisor.invalidate(["x.y.localhost"])
    took = time.monotonic() - started
    while sum(e.kind == "no-ack" for e in supervisor.events) < supervisor.count:
        await asyncio.sleep(0.01)  # replaced for that reason
    return took


async def stop(supervisor: Supervisor) -> float:
    await supervisor.start()
    shard = supervisor.live_shards()[0]
    started = time.monotonic()
    await supervisor.stop()
    assert shard.returncode == -9
    return time.monotonic() - started


async def stall(supervisor: Supervisor) -> float:
    await supervisor.start()
    stalled = time.monotonic() + STALL_AFTER
    while not any(e.kind == "unresponsive" for e in supervisor.events):
        await asyncio.sleep(0.01)
    return next(e.at for e in supervisor.events if e.kind == "unresponsive") - stalled


def backoff_gaps(runs: int) -> list[float]:
    """The median gap before each of the first restarts (the second, third, ...)."""
    gaps: list[list[float]] = []

    async def scenario(supervisor: Supervisor) -> float:
        await supervisor.start()
        while sum(e.kind == "started" for e in supervisor.events) < 7:
            await asyncio.sleep(0.01)
        starts = [e.at for e in supervisor.events if e.kind == "started"]
        gaps.append([b - a for a, b in itertools.pairwise(starts)][:6])
        return 0.0

    for _ in range(runs):
        measure(fake("little_workerd.py", "--crash-after", "0"), 1, scenario, max_backoff=0.4)
    return [statistics.median(column) for column in zip(*gaps, strict=False)]


STALL_AFTER = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("mayfly.runtime").setLevel(
        logging.CRITICAL
    )  # every case misbehaves on purpose
    cases: dict[
        str, tuple[tuple[str, ...], int, Callable[[Supervisor], Awaitable[float]], dict[str, Any]]
    ] = {
        "start": (fake("little_workerd.py"), 1, start, {}),
        "startup": (fake("silent_workerd.py"), 1, startup, {"startup_timeout": 0.5}),
        "no-ack": (fake("little_workerd.py", "--no-ack"), 2, no_ack, {}),
        "stop": (fake("little_workerd.py", "--ignore-sigterm"), 1, stop, {"drain_grace": 0.5}),
        "stall": (
            fake("little_workerd.py", "--stall-after", str(STALL_AFTER)),
            1,
            stall,
            {"stall_timeout": 2.0},
        ),
    }
    figures: dict[str, list[float]] = {}
    for _ in range(args.runs):  # alternated, so that load hits every figure alike
        for name, (command, count, scenario, overrides) in cases.items():
            figures.setdefault(name, []).append(measure(command, count, scenario, **overrides))
    median = {name: statistics.median(values) for name, values in figures.items()}
    print(f"start: {median['start']:.2f} s to ready (the baseline: nothing waited for)")
    for name, limit, value in (
        ("startup", "startup_timeout", 0.5),
        ("no-ack", "invalidate_timeout", 1.0),
        ("stop", "drain_grace", 0.5),
        ("stall", "stall_timeout", 2.0),
    ):
        print(
            f"{name}: {median[name]:.2f} s against {limit} {value:g} s: ratio {median[name] / value:.2f}"
        )
    gaps = backoff_gaps(args.runs)
    waits = [0.0, 0.1, 0.2, 0.4, 0.4, 0.4]
    print(
        "backoff: gaps between starts "
        + ", ".join(f"{gap:.2f}" for gap in gaps)
        + " s; the waits asked "
        + ", ".join(f"{wait:g}" for wait in waits)
        + " s; gap minus wait "
        + ", ".join(f"{gap - wait:.2f}" for gap, wait in zip(gaps, waits, strict=False))
        + " s (≈ one start)"
    )


if __name__ == "__main__":
    main()
