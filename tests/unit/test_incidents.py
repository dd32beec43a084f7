"""Who an incident blames (runtime/supervisor.attribute), and how the probe follows the CPU limit."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from mayfly.runtime.attribution import attribute, exits_within, usual_suspects_first
from mayfly.runtime.dataplane import probe_schedule
from mayfly.runtime.incidents import Incident
from mayfly.runtime.sandbox import Sandbox
from mayfly.runtime.shard import RequestStart, ShardLauncher
from mayfly.runtime.shard_limits import Limits, ShardEvent
from mayfly.runtime.supervisor import _KEPT, Supervisor

BAD, GOOD, OTHER = "v-bad", "v-good", "v-other"


def start(request_id: str, version: str, at: float) -> RequestStart:
    return RequestStart(request_id, version, at)


def test_one_version_running_on_a_spinning_shard_is_certain() -> None:
    incident = attribute(
        "unresponsive",
        "shard 0",
        running=[start("1", BAD, 1.0), start("2", BAD, 2.0)],
        recent=[start("0", GOOD, 0.5)],  # finished: not a suspect
        reported=[],
        corroborated=True,
        detail="spinning",
    )
    assert incident == Incident("unresponsive", "shard 0", (BAD,), True, "spinning")


def test_several_versions_running_are_uncertain_and_the_newest_start_comes_first() -> None:
    incident = attribute(
        "unresponsive",
        "shard 0",
        running=[start("1", GOOD, 1.0), start("2", BAD, 2.0), start("3", GOOD, 0.5)],
        recent=[],
        reported=[],
        corroborated=True,
        detail="",
    )
    assert incident.suspects == (GOOD, BAD)  # request 3 is the newest in the in-flight order
    assert not incident.certain


def test_a_shard_that_burnt_no_cpu_blames_nobody_for_certain() -> None:
    incident = attribute(
        "unresponsive",
        "shard 0",
        running=[start("1", GOOD, 1.0)],
        recent=[],
        reported=[],
        corroborated=False,
        detail="starved",
    )
    assert incident.suspects == (GOOD,)
    assert not incident.certain


def test_nothing_running_falls_back_to_recent_starts_then_to_the_health_answer() -> None:
    recent = attribute(
        "memory",
        "shard 1",
        running=[],
        recent=[start("1", BAD, 1.0), start("2", OTHER, 2.0), start("3", BAD, 3.0)],
        reported=[GOOD],
        corroborated=True,
        detail="",
    )
    assert recent.suspects == (BAD, OTHER)
    assert not recent.certain
    reported = attribute(
        "memory",
        "shard 1",
        running=[],
        recent=[],
        reported=[GOOD, OTHER],
        corroborated=True,
        detail="",
    )
    assert reported.suspects == (OTHER, GOOD)
    assert not reported.certain


def test_the_usual_suspect_outranks_a_neighbour_that_started_last() -> None:
    history = [
        Incident("unresponsive", "shard 0", (BAD,), True, ""),
        Incident("unresponsive", "shard 1", (BAD, OTHER), False, ""),
    ]
    now = Incident("unresponsive", "shard 0", (GOOD, BAD), False, "")
    assert usual_suspects_first(now, history).suspects == (BAD, GOOD)
    assert usual_suspects_first(now, []).suspects == (GOOD, BAD)  # no history: newest first


def test_the_probe_finds_a_loop_within_the_cpu_limit() -> None:
    for limit_ms in (200, 1500, 5000, 30_000):
        interval, timeout = probe_schedule(limit_ms)
        assert abs(interval + timeout - limit_ms / 1000) < 1e-9
        assert 0 < interval <= 0.5
        assert timeout > interval
    assert probe_schedule(1500) == (0.25, 1.25)


def test_the_supervisor_keeps_only_its_newest_events(tmp_path: Path) -> None:
    with socket.socket() as listener:
        launcher = ShardLauncher(
            command=("true",),
            config=tmp_path / "shard.capnp",
            sandbox=Sandbox.none(),
            env={},
            admin_dir=tmp_path,
            listener=listener,
        )
        supervisor = Supervisor(launcher, 1, Limits(memory_bytes=1))

        class FakeShard:
            slot, pid = 0, 1

        for _ in range(5 * _KEPT):
            supervisor._record(FakeShard(), "started")  # type: ignore[arg-type]
        assert _KEPT <= len(supervisor.events) <= 2 * _KEPT
        assert all(isinstance(e, ShardEvent) for e in supervisor.events)


class Exiting:
    """A shard whose exit the test decides."""

    def __init__(self) -> None:
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    async def wait(self) -> int:
        return await asyncio.shield(self.exited)


def test_waiting_for_an_exit_ends_when_cancelled_as_the_shard_exits() -> None:
    """Supervisor.stop() cancels the supervising tasks; one whose shard exits in the same turns of
    the loop must end all the same (with asyncio.wait_for, Python 3.11 returned the exit instead,
    and stop waited forever for a task that went on watching). A cancel accepted is a cancel done,
    whichever turn after the exit it lands in."""

    async def scenario() -> list[int]:
        swallowed = []
        for turns in range(12):
            shard = Exiting()
            task = asyncio.ensure_future(exits_within(shard, 10.0))  # type: ignore[arg-type]
            for _ in range(3):
                await asyncio.sleep(0)
            shard.exited.set_result(0)
            for _ in range(turns):
                await asyncio.sleep(0)
            if not task.cancel():
                assert await task is True  # it had seen the exit before the cancel
                continue
            try:
                await task
            except asyncio.CancelledError:
                continue
            swallowed.append(turns)
        return swallowed

    assert asyncio.run(scenario()) == []
