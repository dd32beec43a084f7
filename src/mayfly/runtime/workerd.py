"""The pinned workerd binary: where it is and how a shard is started with it."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mayfly.runtime.config import ADMIN_SOCKET, HTTP_SOCKET

ENV_VAR = "MAYFLY_WORKERD"

_PACKAGES = {"x86_64": "workerd-linux-64", "aarch64": "workerd-linux-arm64"}


class WorkerdNotFound(RuntimeError):
    pass


def find_workerd(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else $MAYFLY_WORKERD, else node_modules/@cloudflare/workerd-<platform>/bin/workerd
    in the current directory or any directory above this package (the repository's checkout)."""
    chosen = explicit or os.environ.get(ENV_VAR)
    if chosen:
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise WorkerdNotFound(f"workerd binary {path} does not exist or is not executable.")
        return path.resolve()
    package = _PACKAGES.get(platform.machine())
    if package is None:
        raise WorkerdNotFound(f"No pinned workerd for {platform.machine()}; set {ENV_VAR}.")
    relative = Path("node_modules") / "@cloudflare" / package / "bin" / "workerd"
    roots = [Path.cwd(), *Path(__file__).resolve().parents]
    for root in roots:
        candidate = root / relative
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    raise WorkerdNotFound(
        f"workerd not found ({relative} in the current directory or above the mayfly package); "
        f"run `npm ci` in the checkout or set {ENV_VAR}."
    )


@dataclass(frozen=True)
class ShardFds:
    http: int
    admin: int
    control: int

    def all(self) -> tuple[int, int, int]:
        return (self.http, self.admin, self.control)


def serve_argv(command: Sequence[str], config: Path, fds: ShardFds) -> list[str]:
    """`command` is the binary (or, in tests, a fake's interpreter and script)."""
    return [
        *command,
        "serve",
        str(config),
        "--experimental",  # the Worker Loader is experimental
        "--socket-fd",
        f"{HTTP_SOCKET}={fds.http}",
        "--socket-fd",
        f"{ADMIN_SOCKET}={fds.admin}",
        "--control-fd",
        str(fds.control),
    ]
