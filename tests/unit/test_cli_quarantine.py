"""A quarantined Worker as `mayfly whoami` and `mayfly deploy` show it, and `mayfly admin quarantine`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from mayfly.app import Platform
from mayfly.cli.main import cli
from tests.clock import ManualClock
from tests.unit.cli_support import Mayfly, app_transport
from tests.unit.test_cli_deploy import write_project


@pytest.fixture
def transport(platform: Platform) -> Iterator[httpx.MockTransport]:
    with app_transport(platform.public_app()) as t:
        yield t


@pytest.fixture
def mayfly(
    transport: httpx.MockTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Mayfly:
    monkeypatch.chdir(write_project(tmp_path / "project"))
    return Mayfly(transport, tmp_path / "home")


def quarantine(platform: Platform, version_id: str) -> None:
    outcome = platform.services.quarantine.record_incident(
        kind="unresponsive",
        shard="shard 1 (pid 42)",
        suspects=[version_id],
        certain=True,
        detail="no answer to the health probe within 1.0 s",
    )
    assert [q.script for q in outcome.started] == ["hello"]


def test_whoami_and_deploy_show_the_quarantine(
    mayfly: Mayfly, platform: Platform, clock: ManualClock
) -> None:
    deployed = mayfly.ok("deploy", "--temporary")
    assert mayfly.ok("whoami")["quarantined"] == []
    quarantine(platform, deployed["version_id"])

    body = mayfly.ok("whoami")
    (entry,) = body["quarantined"]
    assert entry["script"] == "hello"
    assert entry["version_id"] == deployed["version_id"]
    assert entry["kind"] == "unresponsive"
    assert "froze the shard" in entry["reason"]
    assert entry["until"].endswith("Z")
    assert 0 < entry["seconds_left"] <= 60
    text = mayfly("whoami")
    assert text.exit_code == 0
    assert "Quarantined" in text.stdout
    assert f"hello until {entry['until']}" in text.stdout

    code, failed = mayfly.json("deploy")
    assert code == 1
    assert failed["error"]["code"] == 10060
    assert "'hello' is quarantined until" in failed["error"]["message"]
    assert deployed["version_id"] in failed["error"]["message"]
    shown = failed["error"]["quarantine"]
    assert {k: v for k, v in shown.items() if k != "seconds_left"} == {
        k: v for k, v in entry.items() if k != "seconds_left"
    }
    assert 0 < shown["seconds_left"] <= 60
    text = mayfly("deploy")
    assert text.exit_code == 1
    assert "is quarantined until" in text.stderr

    clock.advance(61)
    assert mayfly.ok("whoami")["quarantined"] == []
    assert mayfly.ok("deploy")["script"] == "hello"


def test_admin_quarantine_list_and_lift(
    mayfly: Mayfly, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = mayfly.ok("deploy", "--temporary")
    quarantine(platform, deployed["version_id"])
    settings = platform.settings
    runner = CliRunner()
    env = {
        "MAYFLY_DATA_DIR": str(settings.data_dir),
        "MAYFLY_DATABASE_URL": settings.database_url,
    }
    listed = runner.invoke(cli, ["admin", "quarantine", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.stdout)["quarantined"]
    assert entry["account_name"] == deployed["account_name"]
    assert entry["script"] == "hello"
    assert entry["version_id"] == deployed["version_id"]
    text = runner.invoke(cli, ["admin", "quarantine", "list"], env=env)
    assert f"{deployed['account_name']}/hello" in text.stdout

    lifted = runner.invoke(
        cli,
        ["admin", "quarantine", "lift", deployed["account_name"], "hello", "--json"],
        env=env,
    )
    assert lifted.exit_code == 0, lifted.output
    assert json.loads(lifted.stdout)["lifted"]["script"] == "hello"
    assert mayfly.ok("whoami")["quarantined"] == []
    again = runner.invoke(
        cli, ["admin", "quarantine", "lift", deployed["account_name"], "hello"], env=env
    )
    assert again.exit_code == 1
    assert "not quarantined" in again.output
    assert mayfly.ok("deploy")["script"] == "hello"


def quarantine_account(mayfly: Mayfly, platform: Platform) -> None:
    """The same Worker deployed under two names, each found guilty: the account is quarantined."""
    for name in ("loop1", "loop2"):
        version_id = mayfly.ok("deploy", "--name", name)["version_id"]
        platform.services.quarantine.record_incident(
            kind="unresponsive",
            shard="shard 1 (pid 42)",
            suspects=[version_id],
            certain=True,
            detail="no answer to the health probe within 1.0 s",
        )


def test_whoami_and_deploy_show_the_account_quarantine(
    mayfly: Mayfly, platform: Platform, clock: ManualClock
) -> None:
    mayfly.ok("deploy", "--temporary")
    assert mayfly.ok("whoami")["account_quarantine"] is None
    quarantine_account(mayfly, platform)

    body = mayfly.ok("whoami")
    shown = body["account_quarantine"]
    assert shown["scripts"] == ["loop1", "loop2"]
    assert "2 of its Workers" in shown["reason"]
    assert 0 < shown["seconds_left"] <= 600
    assert shown["until"].endswith("Z")
    text = mayfly("whoami")
    assert f"the whole account until {shown['until']}" in text.stdout

    # A new name is refused like the old ones, and the error says what happened and until when.
    code, failed = mayfly.json("deploy", "--name", "loop3")
    assert code == 1
    assert failed["error"]["code"] == 10060
    assert "is quarantined until" in failed["error"]["message"]
    assert failed["error"]["account_quarantine"]["scripts"] == ["loop1", "loop2"]
    assert failed["error"]["account_quarantine"]["until"] == shown["until"]

    clock.advance(601)
    assert mayfly.ok("whoami")["account_quarantine"] is None
    assert mayfly.ok("deploy", "--name", "loop3")["script"] == "loop3"


def test_admin_lists_and_lifts_an_account_quarantine(
    mayfly: Mayfly, platform: Platform, clock: ManualClock
) -> None:
    deployed = mayfly.ok("deploy", "--temporary")
    quarantine_account(mayfly, platform)
    settings = platform.settings
    runner = CliRunner()
    env = {
        "MAYFLY_DATA_DIR": str(settings.data_dir),
        "MAYFLY_DATABASE_URL": settings.database_url,
    }
    name = deployed["account_name"]
    listed = runner.invoke(cli, ["admin", "quarantine", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.stdout)["accounts"]
    assert entry["account_name"] == name
    assert entry["scripts"] == ["loop1", "loop2"]
    text = runner.invoke(cli, ["admin", "quarantine", "list"], env=env)
    assert f"{name} (whole account)" in text.stdout

    lifted = runner.invoke(cli, ["admin", "quarantine", "lift", name, "--json"], env=env)
    assert lifted.exit_code == 0, lifted.output
    hosts = json.loads(lifted.stdout)["lifted"]["hosts"]
    assert f"hello.{name}.localhost" in hosts
    assert mayfly.ok("whoami")["account_quarantine"] is None
    again = runner.invoke(cli, ["admin", "quarantine", "lift", name], env=env)
    assert again.exit_code == 1
    assert "not quarantined" in again.output
    assert mayfly.ok("deploy", "--name", "loop3")["script"] == "loop3"
