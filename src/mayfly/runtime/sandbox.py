"""Least privilege for shards: an unprivileged user, bubblewrap where it works, death with the parent.

As root, a shard runs as `nobody`, which cannot read the data dir (0700) nor the control plane's
secrets. Inside bubblewrap it also sees only /usr, a few files of /etc, the workerd binary and the
runtime dir (read-only): not the data dir, not /home, not /root.

Shards die with the supervisor, even when it is SIGKILLed. `setpriv --pdeathsig KILL` ties the
first process to the supervisor's thread that started it (the supervisor's, which lives as long as
the data plane). As root, that process is `unshare --pid --fork --kill-child`: everything below it
runs in a PID namespace whose init is the shard's own first process (bwrap, or workerd without
it), so when that dies the kernel kills the whole tree. bwrap's `--die-with-parent` alone is not
enough: bwrap's init arms it only after its setup, and a supervisor killed in that window used to
leave bwrap's init and workerd running under init (containers/bubblewrap#633). The user switch
then happens in a second setpriv, which arms the death signal again after it (a credential change
clears it). Without root (no PID namespace), the chain is setpriv → bwrap, with that window.

A shard's descriptor limit (RLIMIT_NOFILE, soft and hard alike) is set, not inherited from
whatever started `mayfly serve`: `prlimit` sets SHARD_OPEN_FILES (65,536), or the hard limit this
process has when that is lower (raising it takes CAP_SYS_RESOURCE). One shard's descriptors are
its listening sockets, its clients' connections, its connections to the control plane and its
tenants' outbound connections: at most `--outbound-connections` (64) per version,
`--account-outbound-connections` (256) per account and `--shard-outbound-connections` (default half
the shard's descriptor limit: config.shard_outbound_ceiling) in all (outbound.js).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import resource
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("mayfly.runtime")

SHARD_USER = "nobody"
# Descriptors one shard may hold: room for ~1,000 versions at their outbound bound, or tens of
# thousands of client connections, while two shards stay far below the host's file-max.
SHARD_OPEN_FILES = 65536
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = (
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/localtime",
)


class SandboxError(RuntimeError):
    pass


@dataclass(frozen=True)
class ShardUser:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Sandbox:
    user: ShardUser | None = None
    bwrap: str | None = None
    setpriv: str | None = None
    unshare: str | None = None  # as root: the shard's tree in a PID namespace of its own
    readable: tuple[str, ...] = ()  # host paths bound read-only, at the same place, into bwrap
    prlimit: str | None = None  # sets RLIMIT_NOFILE to open_files (0: inherited)
    open_files: int = 0

    @classmethod
    def none(cls) -> Sandbox:
        """No user change and no bwrap; still dies with its parent (used for fake workerds)."""
        return cls(setpriv=shutil.which("setpriv"))

    def wrap(self, argv: Sequence[str], cwd: str) -> list[str]:
        prefix: list[str] = []
        if self.setpriv:
            prefix += [self.setpriv, "--pdeathsig", "KILL", "--"]
        if self._pid_namespace:
            assert self.unshare and self.setpriv and self.user
            prefix += [self.unshare, "--pid", "--fork", "--kill-child=KILL", "--"]
        if self.prlimit and self.open_files:
            prefix += [self.prlimit, f"--nofile={self.open_files}:{self.open_files}", "--"]
        if self._pid_namespace:
            assert self.setpriv and self.user
            prefix += [
                self.setpriv,
                "--reuid", str(self.user.uid),
                "--regid", str(self.user.gid),
                "--clear-groups",
                "--pdeathsig", "KILL",
                "--",
            ]  # fmt: skip
        if self.bwrap:
            prefix += [self.bwrap, *self._bwrap_args(cwd), "--"]
        return [*prefix, *argv]

    def popen_kwargs(self) -> dict[str, Any]:
        """The user switch happens in the child before exec (no preexec_fn); setpriv then sets
        the death signal, which a later credential change would clear. In a PID namespace, the
        second setpriv switches the user instead (`wrap`)."""
        if self.user is None or self._pid_namespace:
            return {}
        return {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}

    def open_files_limit(self) -> int:
        """The descriptor limit a shard gets: `open_files` when prlimit sets it, else this
        process's soft limit, which it inherits."""
        if self.prlimit and self.open_files:
            return self.open_files
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return SHARD_OPEN_FILES if soft == resource.RLIM_INFINITY else soft

    @property
    def _pid_namespace(self) -> bool:
        return bool(self.unshare and self.setpriv and self.user)

    def describe(self) -> str:
        who = f"{self.user.name} (uid {self.user.uid})" if self.user else f"uid {os.getuid()}"
        where = "inside bubblewrap" if self.bwrap else "without a filesystem sandbox"
        pid_ns = ", in a PID namespace of their own" if self._pid_namespace else ""
        files = (
            f", {self.open_files} open files at most" if self.prlimit and self.open_files else ""
        )
        return f"as {who} {where}{pid_ns}{files}"

    def _bwrap_args(self, cwd: str) -> list[str]:
        args = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in _ETC_FILES:
            args += ["--ro-bind-try", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 (a private tmpfs)
        for path in self.readable:
            args += ["--ro-bind", path, path]
        return [*args, "--chdir", cwd]


def plan_sandbox(readable: Sequence[Path], *, use_bwrap: bool = True) -> Sandbox:
    """What this host allows: a user switch when root, bwrap when installed."""
    user = None
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SHARD_USER)
        except KeyError as exc:
            raise SandboxError(f"Shards run as {SHARD_USER!r}, but there is no such user.") from exc
        user = ShardUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    return Sandbox(
        user=user,
        bwrap=shutil.which("bwrap") if use_bwrap else None,
        setpriv=shutil.which("setpriv"),
        unshare=shutil.which("unshare") if user is not None else None,
        readable=tuple(str(p) for p in readable),
        prlimit=shutil.which("prlimit"),
        open_files=shard_open_files(),
    )


def shard_open_files() -> int:
    """SHARD_OPEN_FILES, or this process's hard limit when that is lower: raising it takes
    CAP_SYS_RESOURCE, which root in a container often lacks."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return SHARD_OPEN_FILES if hard == resource.RLIM_INFINITY else min(SHARD_OPEN_FILES, hard)


async def checked_sandbox(sandbox: Sandbox, command: Sequence[str], cwd: Path) -> Sandbox:
    """Runs `command --version` in the sandbox; without bwrap if bwrap cannot work here.

    Logs one line saying how shards will run. Raises SandboxError when the binary cannot run as
    the shard user at all (for example, a checkout the user cannot traverse).
    """
    if sandbox.setpriv is None:
        log.warning(
            "setpriv (util-linux) not found: shards will outlive a supervisor that is SIGKILLed."
        )
    if sandbox.bwrap is None:
        log.warning(
            "bubblewrap (bwrap) is not installed: shards run without a filesystem sandbox. "
            "Install the Debian package `bubblewrap`."
        )
    # What may not work here, dropped in this order until the binary runs: (drop it, warning).
    optional: list[tuple[Callable[[Sandbox], Sandbox], str]] = []
    if sandbox.unshare is not None and sandbox.user is not None:
        optional.append(
            (
                lambda s: replace(s, unshare=None),
                "unshare cannot give shards a PID namespace here (%s): a data plane SIGKILLed "
                "while a shard starts may leave that shard running.",
            )
        )
    if sandbox.bwrap is not None:
        optional.append(
            (
                lambda s: replace(s, bwrap=None),
                "bubblewrap cannot create a sandbox here (%s): shards run without a filesystem "
                "sandbox.",
            )
        )
    for drop, warning in optional:
        problem = await _try(sandbox, command, cwd)
        if problem is None:
            log.info("Shards run %s.", sandbox.describe())
            return sandbox
        log.warning(warning, problem)
        sandbox = drop(sandbox)
    problem = await _try(sandbox, command, cwd)
    if problem is not None:
        raise SandboxError(f"workerd cannot run {sandbox.describe()}: {problem}")
    log.info("Shards run %s.", sandbox.describe())
    return sandbox


async def _try(sandbox: Sandbox, command: Sequence[str], cwd: Path) -> str | None:
    argv = sandbox.wrap([*command, "--version"], str(cwd))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={},
            **sandbox.popen_kwargs(),
        )
    except OSError as exc:
        return str(exc)
    try:
        async with asyncio.timeout(30):  # cancels communicate(); the kill and wait reap it
            output, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "`workerd --version` did not finish within 30 s"
    text = output.decode(errors="replace").strip()
    if proc.returncode != 0:
        return text.splitlines()[-1] if text else f"exit status {proc.returncode}"
    return None
