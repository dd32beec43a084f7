"""The shard user must be able to run workerd even from a checkout under a 0700 directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mayfly.runtime.dataplane import _reachable_copy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root switches the shard user")


def test_a_binary_behind_a_private_directory_is_linked_into_the_runtime_dir(
    tmp_path: Path,
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    binary = private / "workerd"
    binary.write_bytes(b"#!/bin/sh\n")
    binary.chmod(0o755)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    tmp_path.chmod(0o755)
    runtime.chmod(0o755)
    reachable = _reachable_copy(binary, runtime)
    assert reachable == runtime / "workerd"
    assert reachable.read_bytes() == b"#!/bin/sh\n"
    assert os.stat(reachable).st_mode & 0o001


def test_a_reachable_binary_is_used_in_place(tmp_path: Path) -> None:
    public = Path(tempfile.mkdtemp(dir="/tmp"))  # /tmp lets others through; tmp_path may not
    try:
        public.chmod(0o755)
        binary = public / "workerd"
        binary.write_bytes(b"x")
        binary.chmod(0o755)
        assert _reachable_copy(binary, tmp_path) == binary.resolve()
    finally:
        shutil.rmtree(public)
