"""No shard outlives its supervisor, even one that is SIGKILLed (setpriv --pdeathsig and bwrap's
--die-with-parent), with the real workerd in its real sandbox."""

from __future__ import annotations

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
