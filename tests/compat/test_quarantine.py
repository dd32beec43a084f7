"""A quarantined Worker seen through the real wrangler: `deploy` stops with the clean 10060 message
(which Worker, until when, why), no stack trace, no retry loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mayfly.app import Platform
from mayfly.settings import Settings
from tests.compat.conftest import MayflyServer, run_wrangler, running_server

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MayflyServer]:
    # A cooldown longer than wrangler's 60 s Retry-After ceiling: it reports rather than waits.
    extra = ["--quarantine-cooldown", "3600"]
    with running_server(tmp_path_factory.mktemp("server-quarantine"), extra_args=extra) as server:
        yield server


def quarantine(server: MayflyServer, version_id: str) -> None:
    """What the data plane's incident report does, against the server's database."""
    platform = Platform.create(Settings(data_dir=server.data_dir, quarantine_cooldown=3600))
    try:
        outcome = platform.services.quarantine.record_incident(
            kind="unresponsive",
            shard="shard 0 (pid 1)",
            suspects=[version_id],
            certain=True,
            detail="no answer to the health probe within 1.0 s",
        )
    finally:
        platform.db.dispose()
    assert len(outcome.started) == 1


def test_wrangler_deploy_to_a_quarantined_worker_prints_10060(
    server: MayflyServer, new_user: Any, new_project: Any
) -> None:
    user, project = new_user("quarantined"), new_project("hello")
    first = run_wrangler(["deploy", "--temporary"], project, server.env(), user)
    assert first.exit_code == 0, str(first)
    account = user.temporary_account()["account"]
    versions = server.api(
        "GET",
        f"accounts/{account['id']}/workers/scripts/hello-worker/versions",
        token=account["apiToken"],
    ).json()["result"]["items"]
    quarantine(server, versions[0]["id"])

    again = run_wrangler(["deploy", "--temporary"], project, server.env(), user)
    assert again.exit_code == 1, str(again)
    assert "[code: 10060]" in again.stderr, str(again)
    assert "'hello-worker' is quarantined until" in again.stderr
    assert "Waiting" not in again.output  # no Retry-After wait: it is beyond wrangler's 60 s
    assert "error handler also failed" not in again.output
