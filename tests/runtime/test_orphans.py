"""No shard outlives its supervisor, even one that is SIGKILLed (setpriv --pdeathsig and bwrap's
--die-with-parent), with the real workerd in its real sandbox."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.harness import require_workerd
from tests.runtime.test_supervisor import gone, wait_for

pytestmark = pytest.mark.runtime

SCRIPT = """
import asyncio, sys
from mayfly.runtime import procfs
from mayfly.runtime.dataplane import DataPlane
from mayfly.settings import Settings

async def main():
    settings = Settings(data_dir=sys.argv[1], workers_port=0, shards=2)
    data_plane = DataPlane(settings, "http://127.0.0.1:9", "secret")
    await data_plane.start()
    shards = data_plane.supervisor.live_shards()
    print(" ".join(str(p) for s in shards for p in [s.pid, *procfs.descendants(s.pid)]), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_shards_die_with_a_sigkilled_data_plane(tmp_path: Path) -> None:
    require_workerd()
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) >= 2
        assert not any(gone(pid) for pid in pids)
    finally:
        parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=5)


# Killed while a shard starts: bwrap's own init arms its death signal only once its setup is done
# (containers/bubblewrap#633), so a supervisor SIGKILLed in that window used to leave bwrap's init
# and workerd running under init. This script kills itself as soon as any shard's tree is three
# processes deep under a bwrap (bwrap's init exists), long before workerd can listen.
MID_START = """
import asyncio, os, signal, sys, threading
from pathlib import Path
from mayfly.runtime.dataplane import DataPlane
from mayfly.settings import Settings

def children(pid):
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # the process ended while we looked (this thread must not die of it)
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found

def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""

def watch():
    me = os.getpid()
    while True:
        level = children(me)
        for depth in range(4):
            for pid in level:
                if b"bwrap" in cmdline(pid) and children(pid):
                    os.kill(me, signal.SIGKILL)
            level = [c for p in level for c in children(p)]

async def main():
    settings = Settings(data_dir=sys.argv[1], workers_port=0, shards=2)
    data_plane = DataPlane(settings, "http://127.0.0.1:9", "secret")
    threading.Thread(target=watch, daemon=True).start()
    await data_plane.start()
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and not gone(int(entry.name)):
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_no_shard_survives_a_data_plane_sigkilled_while_it_starts(tmp_path: Path) -> None:
    require_workerd()
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    runtime = tmp_path / "tmp"
    runtime.mkdir()
    runtime.chmod(0o755)  # the runtime dir is made here: the shard user must reach it
    tmp_path.chmod(0o755)
    for _ in range(3):
        parent = subprocess.Popen(
            [sys.executable, "-c", MID_START, str(tmp_path / "data")],
            env={**os.environ, "TMPDIR": str(runtime)},
        )
        assert parent.wait(timeout=60) == -signal.SIGKILL
    try:
        wait_for(lambda: not _processes_mentioning(str(runtime)), timeout=5)
    finally:
        for pid in _processes_mentioning(str(runtime)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
