"""Quotas with the real wrangler: at a limit the command fails with the server's 10440 message
(which quota, the usage, the limit, how to free space), printed cleanly, and freeing space lets the
next write through."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import (
    MayflyServer,
    WranglerResult,
    WranglerUser,
    run_wrangler,
    running_server,
)

pytestmark = pytest.mark.compat

NAMESPACE_ID = re.compile(r'id = "([0-9a-f]{32})"')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MayflyServer]:
    limits = ["--quota-kv-keys-temporary", "1", "--quota-workers-temporary", "1"]
    with running_server(tmp_path_factory.mktemp("quota-server"), extra_args=limits) as running:
        yield running


@pytest.fixture(scope="module")
def user(new_user: Any) -> WranglerUser:
    made: WranglerUser = new_user("quota-anon")
    return made


def wrangler(server: MayflyServer, user: WranglerUser, project: Path, *args: str) -> WranglerResult:
    return run_wrangler([*args, "--temporary"], project, server.env(), user)


def test_a_kv_put_over_the_keys_quota_prints_the_servers_message(
    server: MayflyServer, user: WranglerUser, new_project: Any
) -> None:
    project = new_project("hello")
    created = wrangler(server, user, project, "kv", "namespace", "create", "CACHE")
    assert created.exit_code == 0, str(created)
    found = NAMESPACE_ID.search(created.stdout)
    assert found, str(created)
    key = ("kv", "key", "put", "--namespace-id", found.group(1), "--remote")
    assert wrangler(server, user, project, *key[:3], "first", "1", *key[3:]).exit_code == 0
    refused = wrangler(server, user, project, *key[:3], "second", "2", *key[3:])
    assert refused.exit_code == 1, str(refused)
    message = (
        "Quota reached: this temporary account has 1 KV keys of its limit of 1. Delete keys you "
        "no longer need (`wrangler kv key delete`, or `kv bulk delete`). Claiming the account "
        "(its claim URL) raises its limits. [code: 10440]"
    )
    assert message in " ".join(refused.stderr.split()), str(refused)
    assert "Traceback" not in refused.output and "Internal" not in refused.output
    deleted = wrangler(server, user, project, "kv", "key", "delete", "first", *key[3:])
    assert deleted.exit_code == 0, str(deleted)
    assert wrangler(server, user, project, *key[:3], "second", "2", *key[3:]).exit_code == 0


def test_a_deploy_over_the_workers_quota_prints_the_servers_message(
    server: MayflyServer, user: WranglerUser, new_project: Any
) -> None:
    first = new_project("hello", worker_name="first-worker")
    assert wrangler(server, user, first, "deploy").exit_code == 0
    second = new_project("hello", worker_name="second-worker")
    refused = wrangler(server, user, second, "deploy")
    assert refused.exit_code == 1, str(refused)
    text = " ".join(refused.stderr.split())
    assert "Quota reached: this temporary account has 1 Workers of its limit of 1." in text, str(
        refused
    )
    assert "wrangler delete <name>" in text and "[code: 10440]" in text, str(refused)
