"""The DataPlane facade over fake workerds: files it writes, hosts it normalises, cleanup."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from mayfly.runtime.dataplane import DataPlane, _host_key, _internal_address
from mayfly.runtime.shard import ShardStartError
from mayfly.settings import Settings
from tests.runtime.test_supervisor import FAKES, gone


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers_port=0, **overrides)


def test_start_invalidate_stop_with_fake_shards(tmp_path: Path) -> None:
    record = tmp_path / "invalidations"
    fake = (sys.executable, str(FAKES / "little_workerd.py"), "--record", str(record))

    async def scenario() -> None:
        data_plane = DataPlane(
            settings(tmp_path, shards=3),
            "http://127.0.0.1:1234",
            "the-secret",
            command=fake,
            sandbox=False,
        )
        await data_plane.start()
        assert data_plane.port > 0
        supervisor = data_plane.supervisor
        assert supervisor is not None
        shards = supervisor.live_shards()
        assert len(shards) == 3
        runtime = supervisor.launcher.config.parent
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o755
        for name in ("shard.capnp", "dispatcher.js"):
            assert stat.S_IMODE((runtime / name).stat().st_mode) == 0o644
            assert "the-secret" not in (runtime / name).read_text()
        assert "127.0.0.1:1234" in (runtime / "shard.capnp").read_text()
        assert stat.S_IMODE(supervisor.launcher.admin_dir.stat().st_mode) == 0o700
        await data_plane.invalidate(["Hello.Acct.localhost:8788", "x.y.localhost."])
        received = [json.loads(line) for line in record.read_text().splitlines()]
        hosts = ["hello.acct.localhost", "x.y.localhost"]
        # Nothing pushed (no route given); numbered, the same number on every shard.
        assert [r.pop("seq") for r in received] == [1] * 3
        assert received == [{"hosts": hosts, "routes": {}, "complete": False}] * 3
        await data_plane.stop()
        await data_plane.stop()  # idempotent
        assert not runtime.exists()
        assert not supervisor.launcher.admin_dir.exists()
        assert all(gone(s.pid) for s in shards)

    asyncio.run(scenario())


def test_a_failed_start_cleans_up_and_says_why(tmp_path: Path) -> None:
    fake = (sys.executable, str(FAKES / "crashing_workerd.py"))

    async def scenario() -> None:
        data_plane = DataPlane(
            settings(tmp_path), "http://127.0.0.1:1234", "s", command=fake, sandbox=False
        )
        with pytest.raises(ShardStartError, match="fake config error"):
            await data_plane.start()
        assert data_plane.supervisor is None
        await data_plane.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("hello.acct.localhost", "hello.acct.localhost"),
        ("Hello.ACCT.localhost:8788", "hello.acct.localhost"),
        ("hello.acct.localhost.", "hello.acct.localhost"),
        (" hello.acct.example.com:80 ", "hello.acct.example.com"),
    ],
)
def test_hosts_are_keyed_like_the_dispatcher_keys_them(given: str, key: str) -> None:
    assert _host_key(given) == key


def test_the_internal_url_becomes_an_address() -> None:
    assert _internal_address("http://127.0.0.1:8999") == "127.0.0.1:8999"
    assert _internal_address("http://[::1]:8999/") == "[::1]:8999"
    for bad in ("https://127.0.0.1:1", "http://127.0.0.1", "unix:/x"):
        with pytest.raises(ValueError):
            _internal_address(bad)
