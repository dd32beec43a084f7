"""Finding the pinned workerd, and the command line a shard starts with."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayfly.runtime.workerd import ShardFds, WorkerdNotFound, find_workerd, serve_argv
from tests.conftest import missing


def test_the_environment_variable_names_the_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "workerd"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("MAYFLY_WORKERD", str(binary))
    assert find_workerd() == binary.resolve()


def test_a_named_binary_that_is_missing_or_not_executable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WorkerdNotFound, match="does not exist"):
        find_workerd(tmp_path / "nope")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(WorkerdNotFound, match="not executable"):
        find_workerd(plain)


def test_the_pinned_binary_is_found_in_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MAYFLY_WORKERD", raising=False)
    monkeypatch.chdir(tmp_path)  # not from the current directory: from above the package
    root = Path(__file__).resolve().parents[2]
    pinned = root / "node_modules/@cloudflare/workerd-linux-64/bin/workerd"
    if not pinned.exists():
        missing("npm packages are not installed: run scripts/setup")
    assert find_workerd() == pinned.resolve()


def test_serve_argv_passes_both_sockets_and_the_control_fd() -> None:
    argv = serve_argv(("/bin/workerd",), Path("/rt/shard.capnp"), ShardFds(3, 4, 5))
    assert argv == [
        "/bin/workerd",
        "serve",
        "/rt/shard.capnp",
        "--experimental",
        "--socket-fd",
        "http=3",
        "--socket-fd",
        "admin=4",
        "--control-fd",
        "5",
    ]
