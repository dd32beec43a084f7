"""What `mayfly` imports for an agent's commands: never the server, nor what another command needs.

Each command runs in a fresh interpreter, as the `mayfly` entry point runs it, and reports every
module it imported (sys.modules as it exits); the test fails when one of the command's forbidden
modules is among them. No timing is asserted (bench/temporary_deploy.py measures the import time
and a cached redeploy against wrangler's): a forbidden import is what makes a command slow.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mayfly.project
import mayfly.sdk
from mayfly.cli.lazy import LazyGroup
from mayfly.cli.main import COMMANDS, cli
from mayfly.sdk import TemporaryAccount, TemporaryAccountCache

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"

# The server side and what only it uses; none of it belongs on an agent's path.
SERVER = (
    "mayfly.app",
    "mayfly.api",
    "mayfly.pages",
    "mayfly.services",
    "mayfly.storage",
    "mayfly.runtime",
    "mayfly.settings",
    "mayfly.mcp",
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "starlette",
    "argon2",
    "psycopg",
    "jinja2",
    "multipart",
    "prometheus_client",
    "cryptography",
    "jwt",
    "mcp",
    "pydantic",
    # httpx's own command-line client, which `mayfly` never runs
    "rich",
    "pygments",
)
FORBIDDEN = {
    # the group's help lists every command from its summary: nothing of theirs is imported
    "--help": (*SERVER, "httpx", "mayfly.sdk.", "mayfly.project.", "mayfly.cli.options"),
    # no project to read, no tail to open
    "whoami": (
        *SERVER,
        # the SDK's calls go through http.client (mayfly/sdk/transport.py): httpx, httpcore and
        # h11 are for raw answers (KV values), proxies and tests' transports
        "httpx",
        "httpcore",
        "h11",
        "mayfly.project.config",
        "json5",
        "tomllib",
        "websockets",
        "mayfly.sdk.worker_models",
    ),
    # a wrangler.toml project; its upload is multipart through http.client too
    "deploy": (*SERVER, "httpx", "httpcore", "h11", "websockets", "mayfly.cron", "json5"),
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port  # nothing listens once the socket is closed: requests fail at once


def imported_by(args: list[str], cwd: Path, home: Path, api_url: str) -> tuple[set[str], str]:
    """Every module `mayfly ARGS` imports, as the entry point runs it, and what it printed. (No
    proxy variables: with one, the SDK sends everything through httpx, which applies it.)"""
    proxies = ("http_proxy", "https_proxy", "all_proxy")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAYFLY_") and k.lower() not in proxies
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), MAYFLY_API_URL=api_url)
    home.mkdir(parents=True, exist_ok=True)
    report = home / "modules.json"
    # sys.modules as the command exits; httpx._main is None there (main() skips httpx's CLI)
    code = f"""import json, sys
sys.argv = ["mayfly", *sys.argv[2:]]
try:
    from mayfly.cli.main import main
    main()
finally:
    loaded = sorted(name for name, module in sys.modules.items() if module is not None)
    open({str(report)!r}, "w").write(json.dumps(loaded))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, "--", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.exists(), done.stderr
    modules = set(json.loads(report.read_text()))
    assert "mayfly.cli.main" in modules
    return modules, done.stdout + done.stderr


def forbidden_among(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """`name` forbids that module and its submodules; `name.` only its submodules."""

    def matches(module: str, name: str) -> bool:
        if name.endswith("."):
            return module.startswith(name)
        return module == name or module.startswith(f"{name}.")

    return sorted(m for m in modules if any(matches(m, name) for name in forbidden))


def test_forbidden_among() -> None:
    modules = {"sqlalchemy.engine", "mayfly.sdk", "mayfly.sdk.client", "mayfly.apps", "mcp"}
    assert forbidden_among(modules, ("sqlalchemy", "mayfly.sdk.", "mayfly.app", "mcp")) == [
        "mayfly.sdk.client",
        "mcp",
        "sqlalchemy.engine",
    ]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "hello"))


@pytest.mark.parametrize("command", sorted(FORBIDDEN))
def test_an_agent_command_imports_nothing_it_does_not_need(
    command: str, project: Path, tmp_path: Path
) -> None:
    api_url = f"http://127.0.0.1:{closed_port()}"
    home = tmp_path / "home"
    if command == "whoami":  # a cached account, so that whoami goes as far as asking the API
        later = datetime.now(UTC) + timedelta(hours=1)
        cached = TemporaryAccount("a" * 32, "misty-cotton", "mft_x", later, f"{api_url}/c/x", later)
        TemporaryAccountCache(home / ".config" / "mayfly").save(api_url, cached)
    args = {"--help": ["--help"], "whoami": ["whoami"], "deploy": ["deploy", "--temporary"]}
    modules, output = imported_by(args[command], project, home, api_url)
    if command != "--help":  # it got as far as the network (and failed there)
        assert "Could not reach the Mayfly API" in output
    if command == "deploy":  # the project was read and its modules collected before that
        assert {"mayfly.project.config", "mayfly.project.modules"} <= modules
    assert forbidden_among(modules, FORBIDDEN[command]) == []


def test_the_group_help_lists_each_command_by_its_own_summary() -> None:
    """`mayfly --help` shows summaries kept in cli/main.py; they must be the commands' own."""
    for name, lazy in COMMANDS.items():
        command = lazy.load()
        stand_in = click.Command(name, help=lazy.summary)
        for limit in range(20, 200):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), (
                f"update the summary of {name!r} in src/mayfly/cli/main.py"
            )


def test_group_help_is_the_same_before_and_after_loading_the_commands() -> None:
    fresh = LazyGroup(name="mayfly", lazy=COMMANDS, help=cli.help)
    for width in (60, 80, 100, 160):
        settings = {"terminal_width": width, "max_content_width": width}
        lazy_help = click.Context(fresh, info_name="mayfly", **settings).get_help()
        assert not fresh.commands  # the help imported none of them
        loaded = click.Group(
            name="mayfly",
            help=cli.help,
            commands={name: lazy.load() for name, lazy in COMMANDS.items()},
        )
        assert lazy_help == click.Context(loaded, info_name="mayfly", **settings).get_help()


def test_unknown_commands_get_a_suggestion_among_the_lazy_ones() -> None:
    result = CliRunner().invoke(cli, ["whoam"])
    assert result.exit_code == 2
    assert "Did you mean 'whoami'?" in result.output


@pytest.mark.parametrize("package", [mayfly.sdk, mayfly.project])
def test_every_public_name_of_a_lazy_package_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    for name in names:
        getattr(package, name)  # imported from the submodule lazy_exports names
    assert set(names) <= set(dir(package))
    with pytest.raises(AttributeError):
        package.no_such_name  # type: ignore[attr-defined]  # noqa: B018
