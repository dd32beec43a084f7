"""How a shard's command is wrapped: death with the parent, bubblewrap's view, the user switch."""

from __future__ import annotations

import resource
from pathlib import Path
from shutil import which

from mayfly.runtime.sandbox import SHARD_OPEN_FILES, Sandbox, ShardUser, plan_sandbox


def test_setpriv_sets_the_death_signal_then_bwrap_runs_the_command() -> None:
    sandbox = Sandbox(
        user=ShardUser("nobody", 65534, 65534),
        bwrap="/usr/bin/bwrap",
        setpriv="/usr/bin/setpriv",
        readable=("/opt/workerd", "/tmp/mayfly-runtime-x"),
    )
    argv = sandbox.wrap(["/opt/workerd", "serve"], "/tmp/mayfly-runtime-x")
    assert argv[:4] == ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
    assert argv[4] == "/usr/bin/bwrap"
    assert argv[-3:] == ["--", "/opt/workerd", "serve"]
    bwrap = argv[5:-3]
    for flag in ("--die-with-parent", "--unshare-pid", "--new-session"):
        assert flag in bwrap
    assert (
        "--share-net" not in bwrap and "--unshare-net" not in bwrap
    )  # the internal API is on loopback
    pairs = list(zip(bwrap, bwrap[1:], bwrap[2:], strict=False))
    assert ("--ro-bind", "/opt/workerd", "/opt/workerd") in pairs
    assert ("--ro-bind", "/tmp/mayfly-runtime-x", "/tmp/mayfly-runtime-x") in pairs
    assert ("--tmpfs", "/tmp", "--ro-bind") in pairs  # the runtime dir is bound over the tmpfs
    assert bwrap[-2:] == ["--chdir", "/tmp/mayfly-runtime-x"]
    assert not any(arg in ("/", "/root", "/home", "/work") for arg in bwrap)
    assert sandbox.popen_kwargs() == {"user": 65534, "group": 65534, "extra_groups": []}
    assert sandbox.describe() == "as nobody (uid 65534) inside bubblewrap"


def test_without_a_user_or_bwrap_only_the_death_signal_remains() -> None:
    sandbox = Sandbox(setpriv="/usr/bin/setpriv")
    assert sandbox.wrap(["w"], "/") == ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--", "w"]
    assert sandbox.popen_kwargs() == {}


def test_the_plan_binds_what_it_is_given(tmp_path: Path) -> None:
    sandbox = plan_sandbox([tmp_path], use_bwrap=False)
    assert sandbox.bwrap is None
    assert sandbox.readable == (str(tmp_path),)


def test_as_root_the_tree_gets_a_pid_namespace_and_the_user_switch_moves_inside_it() -> None:
    sandbox = Sandbox(
        user=ShardUser("nobody", 65534, 65534),
        bwrap="/usr/bin/bwrap",
        setpriv="/usr/bin/setpriv",
        unshare="/usr/bin/unshare",
    )
    argv = sandbox.wrap(["/opt/workerd", "serve"], "/tmp/mayfly-runtime-x")
    assert argv[:4] == ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
    assert argv[4:9] == ["/usr/bin/unshare", "--pid", "--fork", "--kill-child=KILL", "--"]
    # The user switch clears the death signal: the second setpriv arms it again after it.
    assert argv[9:19] == [
        "/usr/bin/setpriv",
        "--reuid", "65534",
        "--regid", "65534",
        "--clear-groups",
        "--pdeathsig", "KILL",
        "--",
        "/usr/bin/bwrap",
    ]  # fmt: skip
    assert sandbox.popen_kwargs() == {}
    assert sandbox.describe() == (
        "as nobody (uid 65534) inside bubblewrap, in a PID namespace of their own"
    )


def test_the_plan_asks_for_a_pid_namespace_only_as_root(tmp_path: Path) -> None:
    sandbox = plan_sandbox([tmp_path])
    assert (sandbox.unshare is not None) == (sandbox.user is not None and bool(which("unshare")))


def test_the_descriptor_limit_is_set_before_the_user_switch() -> None:
    sandbox = Sandbox(
        user=ShardUser("nobody", 65534, 65534),
        setpriv="/usr/bin/setpriv",
        unshare="/usr/bin/unshare",
        prlimit="/usr/bin/prlimit",
        open_files=65536,
    )
    argv = sandbox.wrap(["/opt/workerd", "serve"], "/tmp/mayfly-runtime-x")
    # Inside the PID namespace, before the user switch: root may raise the hard limit.
    assert argv[9:13] == ["/usr/bin/prlimit", "--nofile=65536:65536", "--", "/usr/bin/setpriv"]
    assert sandbox.describe().endswith(", 65536 open files at most")


def test_the_plan_sets_the_descriptor_limit_within_what_it_may(tmp_path: Path) -> None:
    sandbox = plan_sandbox([tmp_path])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert sandbox.prlimit == which("prlimit")
    expected = SHARD_OPEN_FILES if hard == resource.RLIM_INFINITY else min(SHARD_OPEN_FILES, hard)
    assert sandbox.open_files == expected


def test_the_descriptor_limit_a_shard_gets_is_the_set_one_or_the_inherited_one() -> None:
    assert Sandbox(prlimit="/usr/bin/prlimit", open_files=20000).open_files_limit() == 20000
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    inherited = SHARD_OPEN_FILES if soft == resource.RLIM_INFINITY else soft
    assert Sandbox.none().open_files_limit() == inherited
