"""The harness itself: what reaches wrangler's environment, and how connections are judged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.conftest import AGENT_VARIABLES, is_loopback, strip_ansi, wrangler_environment

pytestmark = pytest.mark.compat


def test_agent_and_cloudflare_variables_never_reach_wrangler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    leaked = {
        **dict.fromkeys(AGENT_VARIABLES, "1"),
        "CLAUDE_CODE_ENTRYPOINT": "cli",
        "CLOUDFLARE_API_TOKEN": "leak",
        "CLOUDFLARE_ACCOUNT_ID": "leak",
        "WRANGLER_SEND_METRICS": "true",
        "MAYFLY_API_PORT": "1",
    }
    for name, value in leaked.items():
        monkeypatch.setenv(name, value)
    env = wrangler_environment(
        tmp_path, {"CLOUDFLARE_API_BASE_URL": "http://127.0.0.1:1/client/v4"}
    )
    assert not set(env) & (set(leaked) - {"WRANGLER_SEND_METRICS"})
    assert env["WRANGLER_SEND_METRICS"] == "false"
    assert env["HOME"] == str(tmp_path)
    assert env["TMPDIR"] == str(tmp_path / "tmp")
    assert env["PATH"].split(":")[0].endswith("node_modules/.bin")


def test_only_127_0_0_1_counts_as_local() -> None:
    assert is_loopback("127.0.0.1")
    assert not is_loopback("127.0.0.53")  # a local DNS resolver: wrangler looked a name up
    assert not is_loopback("104.16.0.1")


def test_strip_ansi() -> None:
    assert (
        strip_ansi("\x1b[31m✘ \x1b[41;31m[\x1b[41;97mERROR\x1b[41;31m]\x1b[0m x") == "✘ [ERROR] x"
    )
