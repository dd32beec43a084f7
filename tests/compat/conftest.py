"""The wrangler compatibility harness: a real `mayfly serve`, and the real wrangler 4.164.0 pointed at it.

Every wrangler run is isolated (its own HOME, XDG_CONFIG_HOME and TMPDIR), kept offline (metrics
off, the npm update check pre-seeded, spec §2) and, where strace is installed, watched: a run that
connects anywhere but the loopback interface fails its test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve import MAYFLY, NODE_BIN, ROOT, ServeProcess, free_port, server_environment, serving

__all__ = ["MAYFLY", "NODE_BIN", "ROOT", "free_port", "server_environment"]

NODE = NODE_BIN / "node"
WRANGLER_JS = ROOT / "node_modules" / "wrangler" / "bin" / "wrangler.js"
WRANGLER_VERSION = "4.164.0"
PROJECTS = Path(__file__).resolve().parent / "projects"
STRACE = shutil.which("strace")

# wrangler gets only these from the parent environment; everything else (CLOUDFLARE_*, WRANGLER_*,
# and the variables am-i-vibing 0.5.0 reads to detect coding agents: CLAUDECODE, OPENCODE*,
# CURSOR_TRACE_ID, GEMINI_CLI, CODEX_THREAD_ID, REPL_ID, AI_AGENT, AGENT, TERM_PROGRAM, PAGER, …)
# is left out, so a run behaves the same inside an agent's shell, a terminal and CI.
INHERITED = ("LANG", "LC_ALL", "LC_CTYPE")
# Variables the bundled am-i-vibing 0.5.0 checks (grep wrangler-dist/cli.js for "am-i-vibing");
# the harness's own test asserts none of them reach wrangler.
AGENT_VARIABLES = (
    "OPENCODE",
    "OPENCODE_BIN_PATH",
    "OPENCODE_SERVER",
    "OPENCODE_APP_INFO",
    "OPENCODE_MODES",
    "CLAUDECODE",
    "CURSOR_TRACE_ID",
    "ANTIGRAVITY_AGENT",
    "ANTIGRAVITY_PROJECT_ID",
    "GEMINI_CLI",
    "CODEX_THREAD_ID",
    "REPL_ID",
    "REPLIT_MODE",
    "AIDER_API_KEY",
    "npm_config_yes",
    "TERM_PROGRAM",
    "PAGER",
    "GIT_PAGER",
    "CODEIUM_EDITOR_APP_ROOT",
    "CRUSH",
    "AGENT",
    "AI_AGENT",
    "AMP_CURRENT_THREAD_ID",
    "AUGMENT_AGENT",
    "QWEN_CODE",
    "PI_CODING_AGENT",
    "USER",
    "SHELL",
)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
# Text wrangler prints when it tried to reach somewhere it could not (DNS or connection errors).
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "fetch failed")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def is_loopback(address: str) -> bool:
    """127.0.0.1 only: a resolver on 127.0.0.53 would mean wrangler looked a name up."""
    return address in ("127.0.0.1", "::ffff:127.0.0.1")


# --------------------------------------------------------------------------------------------------
# mayfly serve


@dataclass
class MayflyServer(ServeProcess):
    """A running `mayfly serve` subprocess (API only unless started with runtime=True)."""

    runtime: bool = False

    @property
    def origin(self) -> str:
        return self.api_url

    @property
    def base_url(self) -> str:
        """What wrangler gets as CLOUDFLARE_API_BASE_URL."""
        return f"{self.origin}/client/v4"

    def env(self) -> dict[str, str]:
        return {"CLOUDFLARE_API_BASE_URL": self.base_url}

    def api(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Call the API directly (path relative to /client/v4)."""
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["authorization"] = f"Bearer {token}"
        with httpx.Client(base_url=self.base_url + "/", timeout=30) as client:
            return client.request(method, path.lstrip("/"), headers=headers, **kwargs)

    def create_account(self, name: str) -> dict[str, str]:
        """`mayfly admin account create NAME --json` against this server's data dir."""
        done = subprocess.run(
            [
                str(MAYFLY),
                "admin",
                "account",
                "create",
                name,
                "--json",
                "--data-dir",
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=server_environment(),
            check=False,
        )
        assert done.returncode == 0, f"admin account create failed:\n{done.stdout}\n{done.stderr}"
        created: dict[str, str] = json.loads(done.stdout)
        return created


@contextmanager
def running_server(
    directory: Path,
    *,
    runtime: bool = False,
    pow_k: int = 50,
    pow_g: int = 2000,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 60.0,
) -> Iterator[MayflyServer]:
    """Start `mayfly serve` on free ports with its data in `directory`; stop it afterwards."""
    flags = ["--runtime", "true" if runtime else "false", "--pow-k", str(pow_k)]
    flags += ["--pow-g", str(pow_g), *extra_args]
    with serving(MayflyServer, directory, *flags, timeout=startup_timeout) as server:
        server.runtime = runtime
        yield server


# --------------------------------------------------------------------------------------------------
# wrangler


@dataclass
class WranglerResult:
    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    connections: list[str] | None = None  # remote addresses of connect()s, None without strace

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"$ wrangler {' '.join(self.args)}  (exit {self.exit_code}, {self.seconds:.1f} s)\n"
            f"----- stdout -----\n{self.stdout}\n----- stderr -----\n{self.stderr}"
        )


@dataclass
class WranglerUser:
    """One person's machine for wrangler: HOME, XDG_CONFIG_HOME and TMPDIR of their own."""

    home: Path
    runs: list[WranglerResult] = field(default_factory=list)

    @property
    def config_home(self) -> Path:
        return self.home / ".config"

    @property
    def tmpdir(self) -> Path:
        return self.home / "tmp"

    @property
    def temporary_account_file(self) -> Path:
        # ~/.wrangler is never created, so wrangler's global config dir is $XDG_CONFIG_HOME/.wrangler.
        return self.config_home / ".wrangler" / "wrangler-temporary-account.toml"

    def temporary_account(self) -> dict[str, Any]:
        """The cached temporary account: {"account": {id, name, apiToken, expiresAt}, "claim": …}."""
        with self.temporary_account_file.open("rb") as f:
            return tomllib.load(f)


def make_user(home: Path) -> WranglerUser:
    for d in (home, home / ".config", home / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    return WranglerUser(home)


def seed_update_check(tmpdir: Path) -> None:
    """wrangler's npm update check reads $TMPDIR/update-check/wrangler-latest.json (valid 1 h)."""
    cache = tmpdir / "update-check" / "wrangler-latest.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(
        json.dumps({"latest": WRANGLER_VERSION, "lastUpdate": int(time.time() * 1000)})
    )


def wrangler_environment(home: Path, env_extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED if k in os.environ}
    env.update(
        {
            "PATH": os.pathsep.join([str(NODE_BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "TMPDIR": str(home / "tmp"),
            "TZ": "UTC",
            "WRANGLER_SEND_METRICS": "false",
            "DO_NOT_TRACK": "1",
            "CI": "1",
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
        }
    )
    env.update(env_extra or {})
    return env


def _connections(trace_file: Path) -> list[str]:
    found: list[str] = []
    for line in trace_file.read_text(errors="replace").splitlines():
        for v4, v6 in _INET.findall(line):
            found.append(v4 or v6)
    return found


def run_wrangler(
    args: Sequence[str],
    cwd: Path,
    env_extra: Mapping[str, str] | None,
    home: Path | WranglerUser,
    stdin: str | None = None,
    timeout: float = 120,
    *,
    offline: bool = True,
) -> WranglerResult:
    """Run the real wrangler; returns its exit code and ANSI-free output.

    `env_extra` must carry CLOUDFLARE_API_BASE_URL (see MayflyServer.env()): without it wrangler
    would talk to Cloudflare. With `offline` (the default) the run fails its test if wrangler
    connected anywhere but loopback (checked with strace when installed) or printed a network error.
    """
    user = home if isinstance(home, WranglerUser) else make_user(home)
    env = wrangler_environment(user.home, env_extra)
    if not env.get("CLOUDFLARE_API_BASE_URL", "").startswith("http://127.0.0.1:"):
        raise ValueError("run_wrangler needs CLOUDFLARE_API_BASE_URL pointing at 127.0.0.1")
    seed_update_check(user.tmpdir)
    command = [str(NODE), str(WRANGLER_JS), *args]
    trace_file = None
    if STRACE:
        trace_file = user.home / f"strace-{len(user.runs)}.txt"
        command = [
            STRACE,
            "-f",
            "-qq",
            "--seccomp-bpf",
            "-e",
            "trace=connect,sendto,sendmsg",
            "-o",
            str(trace_file),
            *command,
        ]
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(
            f"wrangler {' '.join(args)} did not finish within {timeout} s\n{strip_ansi(out)}\n{strip_ansi(err)}"
        )
    result = WranglerResult(
        list(args),
        process.returncode,
        strip_ansi(out),
        strip_ansi(err),
        time.monotonic() - started,
        _connections(trace_file) if trace_file else None,
    )
    user.runs.append(result)
    if offline:
        outside = [a for a in result.connections or [] if not is_loopback(a)]
        assert not outside, f"wrangler connected outside 127.0.0.1: {outside}\n{result}"
        errors = [e for e in NETWORK_ERRORS if e in result.output]
        assert not errors, f"wrangler printed network errors {errors}\n{result}"
    return result


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session", autouse=True)
def _wrangler_installed() -> None:
    if not (NODE.exists() and WRANGLER_JS.exists() and MAYFLY.exists()):
        pytest.fail("node_modules or .venv is missing: run scripts/setup")
    version = subprocess.run(
        [str(NODE), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert version.startswith("v22."), f"wrangler {WRANGLER_VERSION} needs Node 22, got {version}"


@pytest.fixture(scope="session")
def mayfly_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MayflyServer]:
    """One `mayfly serve` per session (and per parameter: indirect=True with True starts the runtime)."""
    runtime = bool(getattr(request, "param", False))
    directory = tmp_path_factory.mktemp("server-runtime" if runtime else "server")
    with running_server(directory, runtime=runtime) as server:
        yield server


@pytest.fixture(scope="session")
def new_user(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A factory of isolated wrangler users: new_user("anon") → WranglerUser."""

    def make(name: str) -> WranglerUser:
        return make_user(tmp_path_factory.mktemp(f"home-{name}"))

    return make


@pytest.fixture(scope="session")
def new_project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A factory of fresh copies of tests/compat/projects/<name> (wrangler writes into .wrangler/)."""

    def make(name: str, *, worker_name: str | None = None) -> Path:
        target = tmp_path_factory.mktemp(f"project-{name}") / name
        shutil.copytree(PROJECTS / name, target)
        if worker_name:
            config = target / "wrangler.toml"
            text = re.sub(r'(?m)^name = ".*"$', f'name = "{worker_name}"', config.read_text())
            config.write_text(text)
        return target

    return make
