"""The supervisor against fake workerds (tests/fakes): start, restart, replace, drain, no orphans."""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import logging
import socket
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from mayfly.runtime import supervisor as supervisor_module
from mayfly.runtime.admin import AdminError
from mayfly.runtime.incidents import Incident
from mayfly.runtime.sandbox import Sandbox
from mayfly.runtime.shard import Shard, ShardLauncher, ShardStartError
from mayfly.runtime.supervisor import Limits, Supervisor
from mayfly.services.core.metrics import Metrics

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def fake(name: str, *options: str) -> tuple[str, ...]:
    return (sys.executable, str(FAKES / name), *options)


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for init counts: it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def launch(tmp_path: Path, listener: socket.socket) -> Callable[[tuple[str, ...]], ShardLauncher]:
    config = tmp_path / "shard.capnp"
    config.write_text("# the fakes ignore it\n")
    admin_dir = tmp_path / "admin"
    admin_dir.mkdir(mode=0o700)

    def make(command: tuple[str, ...]) -> ShardLauncher:
        return ShardLauncher(
            command=command,
            config=config,
            sandbox=Sandbox.none(),
            env={"MAYFLY_INTERNAL_SECRET": "s"},
            admin_dir=admin_dir,
            listener=listener,
        )

    return make


def limits(**overrides: Any) -> Limits:
    values: dict[str, Any] = {
        "memory_bytes": 512 * 1024 * 1024,
        "probe_timeout": 0.5,
        "probe_interval": 0.1,
        "startup_timeout": 5.0,
        "invalidate_timeout": 1.0,
        "drain_grace": 2.0,
        "max_backoff": 0.5,
        "stall_timeout": 1.2,
    }
    values.update(overrides)
    return Limits(**values)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def http_get(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data.decode()


def test_starts_every_shard_on_one_socket_and_stops_them(
    launch: Callable[..., ShardLauncher], listener: socket.socket, tmp_path: Path
) -> None:
    record = tmp_path / "invalidations"

    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--record", str(record))), 2, limits()
        )
        await supervisor.start()
        shards = supervisor.live_shards()
        assert len(shards) == 2
        pids = {s.pid for s in shards}
        port = listener.getsockname()[1]
        answers = await asyncio.gather(*(asyncio.to_thread(http_get, port) for _ in range(20)))
        assert all("fake workerd" in a for a in answers)
        await supervisor.invalidate(["a.b.localhost"])
        lines = record.read_text().splitlines()
        assert [json.loads(line) for line in lines] == [{"hosts": ["a.b.localhost"]}] * 2
        await supervisor.stop()
        assert all(gone(pid) for pid in pids)
        assert all(s.returncode == 0 for s in shards)  # drained, not killed
        assert not list((tmp_path / "admin").iterdir())

    run(scenario())


def test_a_shard_that_crashes_at_start_fails_start_with_its_output(
    launch: Callable[..., ShardLauncher],
) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(launch(fake("crashing_workerd.py")), 2, limits())
        with pytest.raises(ShardStartError, match="fake config error"):
            await supervisor.start()
        assert all(gone(e.pid) for e in supervisor.events)
        assert {e.kind for e in supervisor.events} == {"start-failed"}

    run(scenario())


def test_a_shard_that_never_listens_fails_start_after_the_timeout(
    launch: Callable[..., ShardLauncher],
) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(launch(fake("silent_workerd.py")), 1, limits(startup_timeout=0.5))
        with pytest.raises(ShardStartError, match=r"did not report listening within 0\.5 s"):
            async with asyncio.timeout(60):  # a hang guard only: bench/supervision.py times it
                await supervisor.start()
        assert all(gone(e.pid) for e in supervisor.events)

    run(scenario())


def test_a_shard_that_crashes_later_is_restarted(launch: Callable[..., ShardLauncher]) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--crash-after", "0.3")), 1, limits()
        )
        told: list[str] = []
        supervisor.on_event = told.append  # what app.py wires to the restart metric
        await supervisor.start()
        first = supervisor.live_shards()[0].pid
        await eventually(lambda: sum(e.kind == "exited" for e in supervisor.events) >= 2)
        await eventually(lambda: bool(supervisor.live_shards()))
        assert supervisor.live_shards()[0].pid != first
        exits = [e for e in supervisor.events if e.kind == "exited"]
        assert "status 3" in exits[0].detail
        assert told.count("exited") >= 2
        metrics = Metrics()
        for kind in told:
            metrics.shard_event(kind)
        restarts = metrics.registry.get_sample_value(
            "mayfly_shard_restarts_total", {"cause": "exited"}
        )
        assert (restarts or 0) >= 2
        await supervisor.stop()
        assert all(gone(e.pid) for e in supervisor.events)

    run(scenario())


def test_a_crash_names_the_version_that_was_running(
    launch: Callable[..., ShardLauncher],
) -> None:
    async def scenario(*options: str) -> list[Incident]:
        command = fake("little_workerd.py", "--crash-after", "0.5", "--running", "v1", *options)
        supervisor = Supervisor(launch(command), 1, limits())
        await supervisor.start()
        await eventually(lambda: bool(supervisor.incidents))
        await supervisor.stop()
        return supervisor.incidents

    fatal = asyncio.run(scenario("--fatal"))[0]
    assert (fatal.kind, fatal.suspects, fatal.certain) == ("crashed", ("v1",), True)
    # Without workerd saying it aborted, the crash may not be the tenant's doing.
    silent = asyncio.run(scenario())[0]
    assert (silent.kind, silent.suspects, silent.certain) == ("crashed", ("v1",), False)


def test_a_memory_kill_names_the_request_still_running(
    launch: Callable[..., ShardLauncher],
) -> None:
    async def scenario() -> None:
        command = fake("little_workerd.py", "--grow-mb", "96", "--running", "v1")
        supervisor = Supervisor(
            launch(command),
            1,
            limits(memory_bytes=32 * 1024 * 1024, memory_ceiling_bytes=64 * 1024 * 1024),
        )
        await supervisor.start()
        await eventually(lambda: bool(supervisor.incidents))
        await supervisor.stop()
        (incident, *_) = supervisor.incidents
        assert (incident.kind, incident.suspects, incident.certain) == ("memory", ("v1",), True)

    run(scenario())


def test_a_crash_looping_shard_is_restarted_with_backoff(
    launch: Callable[..., ShardLauncher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each restart after the second waits twice as long as the one before, up to max_backoff, and
    the restarts keep coming (the waits the supervisor asks for are recorded; how far apart the
    restarts are is measured in bench/supervision.py)."""
    waits: list[float] = []

    class RecordedSleeps:
        """The supervisor module's asyncio, recording its sleeps."""

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        async def sleep(self, delay: float) -> None:
            waits.append(delay)
            await asyncio.sleep(delay)

    monkeypatch.setattr(supervisor_module, "asyncio", RecordedSleeps())

    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--crash-after", "0")), 1, limits(max_backoff=0.4)
        )
        await supervisor.start()
        await eventually(lambda: len(waits) >= 5, timeout=60)
        await supervisor.stop()
        assert waits[:5] == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4])
        assert sum(e.kind == "started" for e in supervisor.events) >= 2

    run(scenario())


def test_an_unresponsive_shard_is_killed_and_replaced(
    launch: Callable[..., ShardLauncher], listener: socket.socket
) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--wedge-after", "0.3")), 1, limits()
        )
        await supervisor.start()
        first = supervisor.live_shards()[0]
        await eventually(lambda: any(e.kind == "unresponsive" for e in supervisor.events))
        await eventually(lambda: bool(supervisor.live_shards()))
        assert first.returncode == -9  # SIGKILL: a wedged process ignores SIGTERM
        assert supervisor.live_shards()[0].pid != first.pid
        await supervisor.stop()

    run(scenario())


def test_a_shard_that_stalls_without_burning_cpu_is_given_the_stall_timeout(
    launch: Callable[..., ShardLauncher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not answering while idle is starvation (the host's, or the GIL's), not a tenant's loop: no
    kill at the probe timeout, and no incident blaming anyone."""
    timed_out: list[Shard] = []
    probe = Shard.probe

    async def counted(shard: Shard, timeout: float) -> dict[str, Any]:
        try:
            return await probe(shard, timeout)
        except AdminError as exc:
            if exc.timed_out:
                timed_out.append(shard)
            raise

    monkeypatch.setattr(Shard, "probe", counted)

    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--stall-after", "0.3")),
            1,
            limits(stall_timeout=4.0),
        )
        await supervisor.start()
        first = supervisor.live_shards()[0]
        await eventually(lambda: timed_out.count(first) >= 3)  # three probe timeouts
        assert first.alive
        assert not any(e.kind == "unresponsive" for e in supervisor.events)
        await eventually(lambda: any(e.kind == "unresponsive" for e in supervisor.events))
        assert not any(i.certain for i in supervisor.incidents)
        await supervisor.stop()

    run(scenario())


def test_a_shard_over_its_memory_budget_is_replaced(launch: Callable[..., ShardLauncher]) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--grow-mb", "96")),
            1,
            limits(memory_bytes=64 * 1024 * 1024, memory_ceiling_bytes=1024 * 1024 * 1024),
        )
        await supervisor.start()
        first = supervisor.live_shards()[0]
        await eventually(lambda: any(e.kind == "recycle" for e in supervisor.events))
        event = next(e for e in supervisor.events if e.kind == "recycle")
        assert "MiB > 64 MiB" in event.detail
        await eventually(lambda: any(e.kind == "drained" for e in supervisor.events))
        assert first.returncode == 0  # replaced gracefully: SIGTERM, not SIGKILL
        assert not any(e.kind == "memory" for e in supervisor.events)
        await supervisor.stop()
        assert all(gone(e.pid) for e in supervisor.events)

    run(scenario())


def test_a_shard_over_its_memory_ceiling_is_killed(launch: Callable[..., ShardLauncher]) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--grow-mb", "96")),
            1,
            limits(memory_bytes=32 * 1024 * 1024, memory_ceiling_bytes=64 * 1024 * 1024),
        )
        await supervisor.start()
        first = supervisor.live_shards()[0]
        await eventually(lambda: any(e.kind == "memory" for e in supervisor.events))
        event = next(e for e in supervisor.events if e.kind == "memory")
        assert "MiB > 64 MiB" in event.detail
        assert first.returncode == -9
        await supervisor.stop()
        assert all(gone(e.pid) for e in supervisor.events)

    run(scenario())


def test_a_shard_that_does_not_acknowledge_an_invalidation_is_replaced(
    launch: Callable[..., ShardLauncher],
) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(launch(fake("little_workerd.py", "--no-ack")), 2, limits())
        await supervisor.start()
        before = {s.pid for s in supervisor.live_shards()}
        async with asyncio.timeout(60):  # a hang guard only: the fake never acknowledges
            await supervisor.invalidate(["x.y.localhost"])
        assert all(gone(pid) for pid in before)
        await eventually(lambda: len(supervisor.live_shards()) == 2)
        assert sum(e.kind == "no-ack" for e in supervisor.events) == 2
        await supervisor.stop()

    run(scenario())


def test_stop_drains_then_kills_a_shard_that_ignores_sigterm(
    launch: Callable[..., ShardLauncher], caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM first (the fake says it ignores it), SIGKILL once the grace is over (how long stop
    takes is measured in bench/supervision.py)."""

    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--ignore-sigterm")), 1, limits(drain_grace=0.5)
        )
        await supervisor.start()
        shard = supervisor.live_shards()[0]
        with caplog.at_level(logging.WARNING, "mayfly.runtime"):
            await supervisor.stop()
        assert "ignoring SIGTERM" in shard.output_tail()
        assert f"{shard.name} did not drain within 0.5 s; killing it" in caplog.messages
        assert shard.returncode == -9
        assert gone(shard.pid)

    run(scenario())


def test_stop_lets_in_flight_work_finish_within_the_grace(
    launch: Callable[..., ShardLauncher],
) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(
            launch(fake("little_workerd.py", "--drain", "0.4")), 1, limits(drain_grace=5)
        )
        await supervisor.start()
        shard = supervisor.live_shards()[0]
        await supervisor.stop()
        assert shard.returncode == 0

    run(scenario())


def test_a_spawn_cancelled_after_its_process_started_kills_and_reaps_it(
    launch: Callable[..., ShardLauncher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor stopping mid-restart cancels Shard.spawn between the process start and the
    control connection: the process is killed and reaped before spawn gives up, and nothing is
    left unclosed (CI once saw a "subprocess still running" warning)."""
    started: list[asyncio.subprocess.Process] = []
    create_subprocess_exec = asyncio.create_subprocess_exec

    async def recorded(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await create_subprocess_exec(*args, **kwargs)
        started.append(process)
        return process

    async def scenario() -> None:
        connecting = asyncio.Event()

        async def never_connects(*args: Any, **kwargs: Any) -> Any:
            connecting.set()
            await asyncio.Event().wait()

        monkeypatch.setattr(asyncio, "create_subprocess_exec", recorded)
        monkeypatch.setattr(asyncio, "open_connection", never_connects)
        spawn = asyncio.create_task(Shard.spawn(launch(fake("little_workerd.py")), 0, 0))
        await asyncio.wait_for(connecting.wait(), 10)
        spawn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await spawn
        (process,) = started
        assert process.returncode == -9
        assert gone(process.pid)

    run(scenario())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started.clear()
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_start_cancelled_as_workerd_s_last_words_arrive_ends_cancelled() -> None:
    """Supervisor.stop() cancels a restart waiting for the output of a shard that exited before
    listening: the cancellation must end it even when the output ends in the same turns of the
    loop (with asyncio.wait_for, Python 3.11 returned instead, the start failed as any failed
    start does and the restart loop went on: stop waited forever)."""

    async def scenario() -> list[int]:
        swallowed = []
        loop = asyncio.get_running_loop()
        for turns in range(12):
            shard = Shard.__new__(Shard)  # only what wait_ready reads
            shard.ready = asyncio.Event()
            shard._exited = loop.create_future()
            shard._exited.set_result(3)
            output: asyncio.Future[None] = loop.create_future()
            shard._tasks = [loop.create_future(), output]
            shard._output = collections.deque()
            shard.process = types.SimpleNamespace(returncode=3)  # type: ignore[assignment]
            task = asyncio.ensure_future(shard.wait_ready(10.0))
            for _ in range(5):
                await asyncio.sleep(0)
            output.set_result(None)
            for _ in range(turns):
                await asyncio.sleep(0)
            if not task.cancel():
                with pytest.raises(ShardStartError):
                    await task
                continue
            try:
                await task
            except asyncio.CancelledError:
                continue
            except ShardStartError:
                swallowed.append(turns)
        return swallowed

    assert asyncio.run(scenario()) == []


ORPHAN_SCRIPT = """
import asyncio, socket, sys, time
from pathlib import Path
from mayfly.runtime.sandbox import Sandbox
from mayfly.runtime.shard import ShardLauncher
from mayfly.runtime.supervisor import Limits, Supervisor

async def main():
    tmp = Path(sys.argv[1])
    launcher = ShardLauncher(
        command=(sys.executable, sys.argv[2], "--ignore-sigterm"),
        config=tmp / "shard.capnp", sandbox=Sandbox.none(), env={},
        admin_dir=tmp, listener=socket.create_server(("127.0.0.1", 0)),
    )
    supervisor = Supervisor(launcher, 2, Limits(memory_bytes=2**30))
    await supervisor.start()
    print(" ".join(str(s.pid) for s in supervisor.live_shards()), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_shards_die_when_the_supervisor_is_sigkilled(tmp_path: Path) -> None:
    (tmp_path / "shard.capnp").write_text("")
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path), str(FAKES / "little_workerd.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    finally:
        parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=30)
