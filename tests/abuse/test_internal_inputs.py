"""What a tenant's Worker sends through the data plane (KV binding, tail events) is bounded too:
a 4xx for the dispatcher, never a 500 with a traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.clock import ManualClock
from tests.conftest import auth, make_settings, provision


def test_kv_writes_from_a_worker_are_bounded(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    platform = Platform.create(make_settings(tmp_path, max_kv_value_bytes=1000), clock=clock)
    with (
        TestClient(platform.public_app(), base_url="http://t/client/v4/") as client,
        TestClient(
            platform.internal_app(),
            base_url="http://internal/internal/v1/",
            headers={"x-mayfly-internal-secret": platform.internal_secret},
        ) as internal,
        caplog.at_level(logging.ERROR),
    ):
        account = provision(client)["account"]
        ns = client.post(
            f"accounts/{account['id']}/storage/kv/namespaces",
            headers=auth(account["apiToken"]),
            json={"title": "t"},
        ).json()["result"]["id"]

        def put(content: bytes, meta: str | None = None, **params: str) -> int:
            headers = {"x-mayfly-kv-metadata": meta} if meta is not None else {}
            response = internal.put(
                f"kv/{ns}", params={"key": "k", **params}, content=content, headers=headers
            )
            return response.status_code

        assert put(b"x" * 1001) == 413
        assert put(b"x", meta="[" * 5000 + "]" * 5000) == 400
        assert put(b"x", meta=json.dumps({"n": 10**30})) == 400
        assert put(b"x", expiration_ttl=str(10**30)) == 400
        assert put(b"x", expiration="9" * 5000) == 400
        assert put(b"x" * 1000, meta='{"ok": true}') == 200
        events = internal.post(
            "tail-events",
            content=json.dumps({"account_id": "a", "script": "s", "events": []})[:-2]
            + "[" * 100_000
            + "]" * 100_000
            + "]}",
        )
        assert events.status_code == 400
    platform.db.dispose()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
