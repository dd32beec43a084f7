"""wrangler's `--event-code` against Mayfly's events (spec §4.5; issue 12, item 3).

wrangler sends the code as `eventCode` in the create-account body and requires
`eventCodeAccepted: true`; an event's accounts do not count against the per-address limit. A code
that provisions nothing answers Cloudflare's error code (1036 unknown, 1038 ended, 1040 used up),
which wrangler prints as one clear line.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.compat.conftest import (
    MAYFLY,
    MayflyServer,
    run_wrangler,
    running_server,
    server_environment,
)

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def one_per_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MayflyServer]:
    directory = tmp_path_factory.mktemp("server-events")
    with running_server(directory, extra_args=["--accounts-per-hour", "1"]) as server:
        yield server


def create_event(server: MayflyServer, accounts: int) -> dict[str, Any]:
    done = subprocess.run(
        [str(MAYFLY), "admin", "event", "create", "Room", "--accounts", str(accounts),
         "--ttl", "1800", "--json", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=60, env=server_environment(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    created: dict[str, Any] = json.loads(done.stdout)
    return created


def test_wrangler_event_code_beyond_the_address_limit(
    one_per_address: MayflyServer, new_user: Any, new_project: Any
) -> None:
    code = create_event(one_per_address, 2)["code"]
    for name in ("first", "second"):  # the address allows one account an hour
        user = new_user(f"event-{name}")
        result = run_wrangler(
            ["deploy", "--temporary", "--event-code", code],
            new_project("hello"),
            one_per_address.env(),
            user,
        )
        assert result.exit_code == 0, str(result)
        assert "Temporary account ready" in result.stderr
    third = run_wrangler(
        ["deploy", "--temporary", "--event-code", code],
        new_project("hello"),
        one_per_address.env(),
        new_user("event-third"),
    )
    assert_one_clear_line(third, "This event has no temporary accounts remaining.")


def assert_one_clear_line(result: Any, message: str) -> None:
    """wrangler names the refusal (Cloudflare's code), not a bare HTTP status."""
    assert result.exit_code != 0, str(result)
    assert f"[ERROR] {message}" in result.output, str(result)
    assert result.output.count("[ERROR]") == 1, str(result)
    assert "Failed to create a temporary preview account" not in result.output, str(result)
    assert "    at " not in result.output, f"a stack trace:\n{result}"


def test_wrangler_names_an_unknown_or_ended_event(
    one_per_address: MayflyServer, new_user: Any, new_project: Any
) -> None:
    unknown = run_wrangler(
        ["deploy", "--temporary", "--event-code", "EVT-NOPE0-NOPE0"],
        new_project("hello"),
        one_per_address.env(),
        new_user("event-unknown"),
    )
    assert_one_clear_line(unknown, "The event code was not found. Check it and try again.")
    code = create_event(one_per_address, 5)["code"]
    ended = subprocess.run(
        [str(MAYFLY), "admin", "event", "end", code, "--json",
         "--data-dir", str(one_per_address.data_dir)],
        capture_output=True, text=True, timeout=60, env=server_environment(), check=False,
    )  # fmt: skip
    assert ended.returncode == 0, ended.stdout + ended.stderr
    late = run_wrangler(
        ["deploy", "--temporary", "--event-code", code],
        new_project("hello"),
        one_per_address.env(),
        new_user("event-ended"),
    )
    assert_one_clear_line(late, "This event has ended.")
