"""Nothing slow runs inside a write transaction: an upload hashes and writes its blobs, scans its
main module for handlers and parses _redirects/_headers before taking the write lock."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.resources import asset_config as assets
from mayfly.services.workers import versions
from tests.conftest import auth, provision, upload_body
from tests.integration.test_assets import SITE, upload_assets


def test_slow_upload_work_runs_outside_the_write_lock(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = platform.db._write_lock
    assert lock is not None  # SQLite
    held: dict[str, list[bool]] = {"handlers": [], "stage": [], "redirects": []}

    def spy(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            held[name].append(lock.locked())
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(versions, "detect_handlers", spy("handlers", versions.detect_handlers))
    monkeypatch.setattr(assets, "parse_redirects", spy("redirects", assets.parse_redirects))
    blobs = platform.services.ctx.blobs
    monkeypatch.setattr(blobs, "stage", spy("stage", blobs.stage))

    account = provision(client)["account"]
    completion, _ = upload_assets(client, account, "site", SITE)
    response = client.put(
        f"accounts/{account['id']}/workers/scripts/site",
        headers=auth(account["apiToken"]),
        **upload_body(assets={"jwt": completion, "config": {"_redirects": "/a /b 301\n"}}),
    )
    assert response.status_code == 200, response.text
    assert held["handlers"] == [False]
    assert held["redirects"] == [False]
    assert held["stage"] and not any(held["stage"])
