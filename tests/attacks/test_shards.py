"""What a tenant that escaped into its shard process would find: an unprivileged user that cannot
read the data dir; and a shard that dies (SIGKILL) comes back while the URL keeps serving."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from mayfly.runtime import procfs
from tests.runtime.harness import LivePlatform, platform_settings, require_workerd

pytestmark = pytest.mark.runtime

HELLO = "export default { fetch() { return new Response('hello'); } };"


def test_shards_run_as_an_unprivileged_user_who_cannot_read_the_data_dir(
    live: LivePlatform,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only a supervisor running as root switches the shards' user")
    database = live.settings.data_dir / "mayfly.db"
    assert database.is_file()
    readable = live.supervisor.launcher.config  # the shards' own config
    assert readable.is_file()
    for shard in live.shards():
        uid = procfs.real_uid(shard.workerd_pid)
        assert uid is not None and uid != 0
        status = Path(f"/proc/{shard.workerd_pid}/status").read_text()
        gid = int(next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1])
        assert gid != 0

        def cat(path: Path, uid: int = uid, gid: int = gid) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["cat", str(path)],
                user=uid,
                group=gid,
                extra_groups=[],
                capture_output=True,
                text=True,
                check=False,
            )

        assert cat(readable).returncode == 0  # the check itself works for this user
        denied = cat(database)
        assert denied.returncode != 0
        assert "Permission denied" in denied.stderr
        # Inside bubblewrap the data dir is not even there.
        if live.supervisor.launcher.sandbox.bwrap:
            root = Path(f"/proc/{shard.workerd_pid}/root")
            assert (root / "usr").is_dir()
            assert not (root / str(live.settings.data_dir.resolve()).lstrip("/")).exists()


HOARD = """
const hoard = [];
export default {
  fetch() {
    for (let i = 0; i < 40; i++) hoard.push(new Uint8Array(8 * 1024 * 1024).fill(1));
    return new Response(`holding ${hoard.length * 8} MiB`);
  },
};
"""


def test_a_shard_over_its_memory_budget_is_replaced(tmp_path: Path) -> None:
    require_workerd()
    # Filling 320 MiB takes over a second on a loaded 2-core host: a CPU limit that long keeps
    # this test about memory.
    live = LivePlatform(platform_settings(tmp_path, shard_memory=256, cpu_limit_ms=10_000))
    try:
        good, bad = live.provision(), live.provision()
        live.deploy(good, "hello", HELLO)
        live.deploy(bad, "hoard", HOARD)
        assert live.status(live.host(bad, "hoard")) == 200
        # Over the budget it is recycled (replaced gracefully), over the ceiling killed.
        replaced = ("recycle", "memory")
        live.wait_for(lambda: any(e.kind in replaced for e in live.supervisor.events))
        event = next(e for e in live.supervisor.events if e.kind in replaced)
        assert "MiB > 256 MiB" in event.detail or "MiB > 384 MiB" in event.detail, event
        live.wait_for(lambda: len(live.shards()) == 2)
        assert all(live.status(live.host(good, "hello")) == 200 for _ in range(10))
    finally:
        live.close()


def test_a_sigkilled_shard_comes_back_while_the_url_keeps_serving(tmp_path: Path) -> None:
    require_workerd()
    live = LivePlatform(platform_settings(tmp_path))
    try:
        account = live.provision()
        live.deploy(account, "hello", HELLO)
        host = live.host(account, "hello")
        assert live.status(host) == 200
        victim = live.shards()[0]
        os.kill(victim.workerd_pid, signal.SIGKILL)
        statuses = [live.status(host) for _ in range(40)]
        live.wait_for(lambda: len(live.shards()) == 2)
        back = {s.slot: s for s in live.shards()}[victim.slot]
        assert back.pid != victim.pid
        assert any(e.kind == "exited" and e.pid == victim.pid for e in live.supervisor.events)
        # At most the request the dying shard had accepted fails.
        assert statuses.count(200) >= len(statuses) - 1, statuses
        assert all(live.status(host) == 200 for _ in range(10))
    finally:
        live.close()
