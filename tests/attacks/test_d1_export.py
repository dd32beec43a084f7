"""A D1 export's signed URL, downloaded by a hostile tenant: the dump is streamed in bounded
chunks (never held whole in the server's memory, once per concurrent download), and the URL is
scoped to its purpose and signature; an import's upload URL takes at most the account's own
database cap, and one pending file per database."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, make_settings, provision

ROWS = 40  # ~160 KB each: a dump of ~6.4 MB


async def _get(app: Any, path: str) -> tuple[int, list[bytes]]:
    """GET `path` straight through the ASGI app, keeping each body message it sends."""
    status, bodies = 0, []
    disconnected = anyio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()  # the client stays until the response ends
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))
            if not message.get("more_body"):
                disconnected.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return status, bodies


def test_export_is_streamed_in_bounded_chunks(client: TestClient) -> None:
    account = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/d1/database"
    created = client.post(base, headers=token, json={"name": "big"})
    db = created.json()["result"]["uuid"]
    filled = client.post(
        f"{base}/{db}/query",
        headers=token,
        json={
            "sql": "CREATE TABLE b (v BLOB); INSERT INTO b WITH RECURSIVE c(i) AS (SELECT 1 "
            f"UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS}) SELECT randomblob(80000) FROM c"
        },
    )
    assert filled.status_code == 200, filled.text
    exported = client.post(
        f"{base}/{db}/export", headers=token, json={"output_format": "polling"}
    ).json()["result"]
    path = urlsplit(exported["result"]["signed_url"]).path
    assert client.post(f"{base}/{db}/export", json={"output_format": "polling"}).status_code in (
        401,
        403,
    )

    status, bodies = client.portal.call(_get, client.app, path)  # type: ignore[union-attr]
    assert status == 200
    dump = b"".join(bodies).decode()
    assert dump.count("INSERT INTO") == ROWS
    # Before: the whole dump in one body message (built in memory, then joined).
    assert len(bodies) > 4
    assert max(len(b) for b in bodies) < 1024 * 1024

    # The URL is the export's only: an import upload, or a forged signature, is refused.
    token_part = path.rsplit("/", 1)[1]
    assert client.put(f"http://testserver/client/v4/d1/imports/{token_part}").status_code == 403
    forged = token_part[:-2] + ("AA" if not token_part.endswith("AA") else "BB")
    assert client.get(f"http://testserver/client/v4/d1/exports/{forged}").status_code == 403


def test_import_uploads_keep_to_the_accounts_cap_and_one_file(tmp_path: Path) -> None:
    cap = 64 * 1024
    settings = make_settings(tmp_path, d1_max_database_bytes_temporary=cap)
    platform = Platform.create(settings)
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        account = provision(client)["account"]
        token = auth(account["apiToken"])
        base = f"accounts/{account['id']}/d1/database"
        db = client.post(base, headers=token, json={"name": "imp"}).json()["result"]["uuid"]

        def upload(body: bytes) -> int:
            etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
            init = client.post(
                f"{base}/{db}/import", headers=token, json={"action": "init", "etag": etag}
            ).json()["result"]
            path = urlsplit(init["upload_url"]).path
            return client.put(f"http://testserver{path}", content=body).status_code

        # Before: a temporary account could upload files of a permanent account's cap (500 MiB).
        assert upload(b"-- " + b"x" * (cap + 1)) == 413
        # Before: every init's URL kept its own file on disk until the hourly sweep.
        for i in range(5):
            assert upload(f"SELECT {i};".encode()) == 200
        pending = list(platform.services.d1.uploads_dir().glob(f"{db}.*"))
        assert len(pending) == 1
    platform.db.dispose()
