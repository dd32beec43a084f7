"""R2 object bodies are held whole in memory, so they are admitted before they are read: a
declared Content-Length over the account's remaining quota is refused before any byte is read
(v4 API and the binding's internal API), one account sends at most `r2_uploads_per_account`
bodies at once, and the server holds at most `r2_upload_memory_bytes` of them; past either a 429
in Cloudflare's envelope with Retry-After, at once, while other accounts' uploads go through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.storage.resource_tables import r2_buckets
from tests.conftest import auth, make_settings, provision

WAIT = 10  # seconds: a guard against hanging, never a synchronisation


class Upload:
    """One PUT driven by hand through the ASGI app: its headers, then `first`, then `rest` only
    once `finish` is set (a client that stays mid-body until then)."""

    def __init__(self, app: Any, path: str, headers: dict[str, str], first: bytes, rest: bytes):
        self.app, self.path, self.headers = app, path, headers
        self.first, self.rest = first, rest
        self.reading = anyio.Event()  # the app asked for the body
        self.finish = anyio.Event()
        self.done = anyio.Event()
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.body = b""
        self._calls = 0

    async def receive(self) -> dict[str, Any]:
        self._calls += 1
        if self._calls == 1:
            self.reading.set()
            return {"type": "http.request", "body": self.first, "more_body": True}
        if self._calls == 2:
            await self.finish.wait()
            return {"type": "http.request", "body": self.rest, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                self.done.set()

    async def run(self) -> None:
        path, _, query = self.path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "PUT",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(b"host", b"testserver")]
            + [(k.lower().encode(), v.encode()) for k, v in self.headers.items()],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
            "state": {},
        }
        await self.app(scope, self.receive, self.send)
        self.done.set()

    def error_code(self) -> int:
        body = json.loads(self.body)
        errors = body.get("errors", [body])
        code: int = errors[0]["code"]
        return code


def put(
    app: Any, path: str, headers: dict[str, str], data: bytes, *, declare: bool = True
) -> Upload:
    """An upload that sends half its body, then waits for `finish`."""
    headers = {**headers, "content-length": str(len(data))} if declare else headers
    half = len(data) // 2
    return Upload(app, path, headers, data[:half], data[half:])


@pytest.fixture
def limits() -> dict[str, Any]:
    return {}


@pytest.fixture
def platform(database_url: str, tmp_path: Path, limits: dict[str, Any]) -> Iterator[Platform]:
    settings = make_settings(tmp_path, database_url=database_url, **limits)
    created = Platform.create(settings)
    yield created
    created.db.dispose()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(
        platform.public_app(),
        base_url="http://testserver/client/v4/",
        raise_server_exceptions=False,
    ) as c:
        yield c


def bucket(client: TestClient) -> tuple[str, dict[str, str]]:
    """A new account's bucket: its objects path on the v4 API, and the account's auth."""
    account: dict[str, Any] = provision(client)["account"]
    token = auth(account["apiToken"])
    base = f"accounts/{account['id']}/r2/buckets"
    assert client.post(base, headers=token, json={"name": "uploads"}).status_code == 200
    return f"/client/v4/{base}/uploads/objects", token


@pytest.mark.parametrize("limits", [{"quota_bytes_temporary": 10_000}])
def test_a_declared_length_over_the_quota_is_refused_before_the_body_is_read(
    platform: Platform, client: TestClient
) -> None:
    objects, token = bucket(client)
    small = client.put(f"{objects[len('/client/v4/') :]}/small", headers=token, content=b"x" * 6000)
    assert small.status_code == 200, small.text
    over = put(client.app, f"{objects}/big", token, b"x" * 5000)
    # Within the quota when it replaces `small` (its 6000 bytes are freed): not refused.
    replacing = put(client.app, f"{objects}/small", token, b"y" * 9000)
    internal = platform.internal_app()
    with platform.db.read() as conn:
        bucket_id = conn.execute(select(r2_buckets.c.id)).scalar_one()
    secret = {"x-mayfly-internal-secret": platform.internal_secret}
    binding = put(internal, f"/internal/v1/r2/{bucket_id}/object?key=big", secret, b"z" * 5000)
    upload_id = "nope"
    part = put(
        internal,
        f"/internal/v1/r2/{bucket_id}/multipart/part?key=big&upload_id={upload_id}&part_number=1",
        secret,
        b"z" * 5000,
    )

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            for upload in (over, binding, part):
                tg.start_soon(upload.run)
            with anyio.fail_after(WAIT):
                for upload in (over, binding, part):
                    await upload.done.wait()
            tg.start_soon(replacing.run)
            with anyio.fail_after(WAIT):
                await replacing.reading.wait()
            replacing.finish.set()

    client.portal.call(scenario)  # type: ignore[union-attr]
    for upload in (over, binding, part):
        # Before: the body was read (then the client's wait for `finish` hung the test).
        assert upload.status == 413, upload.body
        assert upload.error_code() == 10440
        assert not upload.reading.is_set()
    assert replacing.status == 200, replacing.body


@pytest.mark.parametrize("limits", [{"r2_uploads_per_account": 2}])
def test_one_account_sends_at_most_its_limit_of_bodies_at_once(client: TestClient) -> None:
    mine, my_token = bucket(client)
    theirs, their_token = bucket(client)
    big = 2 * 1024 * 1024  # over SMALL_BODY: each takes one of the account's slots
    held = [put(client.app, f"{mine}/held-{i}", my_token, b"a" * big) for i in range(2)]
    extra = put(client.app, f"{mine}/extra", my_token, b"b" * big)
    small = put(client.app, f"{mine}/small", my_token, b"s" * 100)  # takes no slot
    other = put(client.app, f"{theirs}/other", their_token, b"c" * big)
    after = put(client.app, f"{mine}/after", my_token, b"d" * big)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            for upload in held:
                tg.start_soon(upload.run)
            with anyio.fail_after(WAIT):
                for upload in held:
                    await upload.reading.wait()
            tg.start_soon(extra.run)
            other.finish.set()
            tg.start_soon(other.run)
            small.finish.set()
            tg.start_soon(small.run)
            with anyio.fail_after(WAIT):
                await extra.done.wait()
                await other.done.wait()
                await small.done.wait()
            for upload in held:
                upload.finish.set()
            with anyio.fail_after(WAIT):
                for upload in held:
                    await upload.done.wait()
            after.finish.set()
            tg.start_soon(after.run)

    client.portal.call(scenario)  # type: ignore[union-attr]
    assert extra.status == 429, extra.body
    assert extra.error_code() == 10429
    assert int(extra.response_headers["retry-after"]) >= 1
    assert not extra.reading.is_set()
    assert other.status == 200, other.body
    assert small.status == 200, small.body
    assert [u.status for u in held] == [200, 200]
    assert after.status == 200, after.body  # the slots were given back
    got = client.get(f"{mine[len('/client/v4/') :]}/held-1", headers=my_token)
    assert got.content == b"a" * big


@pytest.mark.parametrize("limits", [{"r2_upload_memory_bytes": 1000}])
def test_the_server_holds_at_most_its_budget_of_bodies(client: TestClient) -> None:
    mine, my_token = bucket(client)
    theirs, their_token = bucket(client)
    held = put(client.app, f"{mine}/held", my_token, b"a" * 800)
    declared = put(client.app, f"{theirs}/declared", their_token, b"b" * 500)
    # No Content-Length: counted as it arrives (300 then 300 bytes) and refused mid-body.
    streamed = put(client.app, f"{theirs}/streamed", their_token, b"c" * 600, declare=False)
    streamed.finish.set()
    later = put(client.app, f"{theirs}/later", their_token, b"d" * 500)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(held.run)
            with anyio.fail_after(WAIT):
                await held.reading.wait()
            tg.start_soon(declared.run)
            with anyio.fail_after(WAIT):
                await declared.done.wait()
            tg.start_soon(streamed.run)
            with anyio.fail_after(WAIT):
                await streamed.done.wait()
            held.finish.set()
            with anyio.fail_after(WAIT):
                await held.done.wait()
            later.finish.set()
            tg.start_soon(later.run)

    client.portal.call(scenario)  # type: ignore[union-attr]
    for refused in (declared, streamed):
        assert refused.status == 429, refused.body
        assert refused.error_code() == 10429
        assert "retry-after" in refused.response_headers
    assert not declared.reading.is_set()
    assert held.status == 200, held.body
    assert later.status == 200, later.body
