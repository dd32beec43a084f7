"""The SDK's resource APIs on the wire (httpx MockTransport at the network boundary): KV paging and
cursors, the asset upload protocol, Worker versions/deployments/secrets, and the tail stream."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from mayfly.sdk import (
    AssetSource,
    AssetUpload,
    AssetUploadError,
    MayflyAPIError,
    MayflyClient,
    QuietListener,
    TailError,
    upload_assets,
)
from mayfly.sdk import assets as assets_module
from mayfly.sdk.tail import events, filters

Handler = Callable[[httpx.Request], httpx.Response]


def ok(result: Any = None, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "errors": [], "result": result, **extra})


def client(handler: Handler) -> MayflyClient:
    return MayflyClient(
        "http://api.test", token="api-token", transport=httpx.MockTransport(handler)
    )


def parts(request: httpx.Request) -> list[tuple[str | None, str | None, str, bytes]]:
    """(name, filename, content type, body) of each part of a multipart request."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.read())
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]


# -- KV -------------------------------------------------------------------------------------


def test_kv_keys_follow_the_cursor() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        if "cursor" not in request.url.params:
            return ok([{"name": "a"}, {"name": "b", "expiration": 5}], result_info={"cursor": "c2"})
        return ok([{"name": "c", "metadata": {"x": 1}}], result_info={"cursor": ""})

    keys = list(client(handler).kv.keys("acct", "ns", prefix="p"))
    assert [(k.name, k.expiration, k.metadata) for k in keys] == [
        ("a", None, None),
        ("b", 5, None),
        ("c", None, {"x": 1}),
    ]
    assert seen == [{"prefix": "p"}, {"prefix": "p", "cursor": "c2"}]


def test_kv_namespaces_page_until_a_short_page() -> None:
    pages: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page"]
        pages.append(page)
        assert request.url.params["per_page"] == "100"
        count = 100 if page == "1" else 3
        return ok([{"id": f"{page}-{i}", "title": f"t{page}-{i}"} for i in range(count)])

    assert len(client(handler).kv.list_namespaces("acct")) == 103
    assert pages == ["1", "2"]


def test_kv_put_raw_and_with_metadata_and_keys_are_one_segment() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return ok()

    api = client(handler).kv
    api.put("acct", "ns", "dir/a b?c#d%e", b"\x00raw", expiration_ttl=60)
    api.put("acct", "ns", "k", b"v", metadata={"a": 1}, expiration=99)
    raw, multipart = requests
    assert raw.url.raw_path == (
        b"/client/v4/accounts/acct/storage/kv/namespaces/ns/values/dir%2Fa%20b%3Fc%23d%25e"
        b"?expiration_ttl=60"
    )
    assert raw.content == b"\x00raw"
    assert multipart.url.params["expiration"] == "99"
    assert [(p[0], p[3]) for p in parts(multipart)] == [("value", b"v"), ("metadata", b'{"a": 1}')]


def test_kv_get_is_raw_bytes_and_errors_keep_their_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/there"):
            return httpx.Response(200, content=b"\xffbytes")
        return httpx.Response(
            404, json={"success": False, "errors": [{"code": 10009, "message": "key not found"}]}
        )

    api = client(handler).kv
    assert api.get("a", "n", "there") == b"\xffbytes"
    with pytest.raises(MayflyAPIError) as caught:
        api.get("a", "n", "missing")
    assert caught.value.code == 10009


# -- assets ---------------------------------------------------------------------------------


def sources(tmp_path: Path, files: dict[str, bytes]) -> AssetUpload:
    out = []
    for index, (name, data) in enumerate(files.items()):
        path = tmp_path / name
        path.write_bytes(data)
        out.append(AssetSource("/" + name, f"{index:032x}", len(data), "text/plain", path))
    return AssetUpload(tuple(out), {"html_handling": "none"})


def test_assets_upload_only_what_the_server_asks_for(tmp_path: Path) -> None:
    upload = sources(tmp_path, {"a.txt": b"aaa", "b.txt": b"bb", "c.txt": b"c"})
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path.endswith("/assets-upload-session"):
            manifest = json.loads(request.content)["manifest"]
            assert manifest["/a.txt"] == {"hash": f"{0:032x}", "size": 3}
            return ok({"jwt": "upload-jwt", "buckets": [[f"{0:032x}"], [f"{2:032x}"]]})
        assert request.headers["authorization"] == "Bearer upload-jwt"  # not the API token
        assert request.url.params["base64"] == "true"
        [(name, filename, ctype, body)] = parts(request)
        assert name == filename
        assert ctype == "text/plain"
        last = name == f"{2:032x}"
        assert base64.b64decode(body) == (b"c" if last else b"aaa")
        return ok({"jwt": "completion-jwt" if last else None})

    token, counts = upload_assets(
        client(handler), "acct", "site", upload, QuietListener(), concurrency=1
    )
    assert token == "completion-jwt"
    assert (counts.files, counts.uploaded, counts.already_uploaded) == (3, 2, 1)
    assert len(calls) == 3
    assert calls[0].headers["authorization"] == "Bearer api-token"


def test_assets_nothing_to_upload(tmp_path: Path) -> None:
    upload = sources(tmp_path, {"a.txt": b"a"})
    handler = lambda request: ok({"jwt": "completion", "buckets": []})  # noqa: E731
    token, counts = upload_assets(client(handler), "acct", "s", upload, QuietListener())
    assert token == "completion" and counts.uploaded == 0 and counts.already_uploaded == 1


def test_assets_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets_module, "BACKOFF", 0.0)
    upload = sources(tmp_path, {"a.txt": b"a"})
    asked = f"{0:032x}"
    attempts: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/assets-upload-session"):
            return ok({"jwt": "u", "buckets": [[asked]]})
        attempts.append(1)
        if len(attempts) < 3:
            return httpx.Response(
                502, json={"success": False, "errors": [{"code": 1, "message": "bad gateway"}]}
            )
        return ok({"jwt": "done"})

    assert upload_assets(client(flaky), "a", "s", upload, QuietListener())[0] == "done"
    assert len(attempts) == 3

    def never_completes(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/assets-upload-session"):
            return ok({"jwt": "u", "buckets": [[asked]]})
        return ok({"jwt": None})

    with pytest.raises(AssetUploadError, match="never confirmed"):
        upload_assets(client(never_completes), "a", "s", upload, QuietListener())

    def asks_for_a_stranger(request: httpx.Request) -> httpx.Response:
        return ok({"jwt": "u", "buckets": [["f" * 32]]})

    with pytest.raises(AssetUploadError, match="not in the manifest"):
        upload_assets(client(asks_for_a_stranger), "a", "s", upload, QuietListener())

    def refuses(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/assets-upload-session"):
            return ok({"jwt": "u", "buckets": [[asked]]})
        return httpx.Response(
            401, json={"success": False, "errors": [{"code": 10020, "message": "expired"}]}
        )

    with pytest.raises(MayflyAPIError) as caught:
        upload_assets(client(refuses), "a", "s", upload, QuietListener())
    assert caught.value.code == 10020


# -- workers --------------------------------------------------------------------------------


def test_workers_calls() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("/deployments") and request.method == "POST":
            return ok({"id": "d1", "versions": [{"version_id": "v1", "percentage": 100}]})
        if request.url.path.endswith("/deployments"):
            return ok(
                {
                    "deployments": [
                        {
                            "id": "d1",
                            "created_on": "2026-01-01T00:00:00.000000Z",
                            "annotations": {"workers/message": "hi"},
                            "versions": [{"version_id": "v1", "percentage": 100}],
                        }
                    ]
                }
            )
        return ok(None)

    api = client(handler).workers
    made = api.deploy_version("a", "w", "v1", {"workers/message": "back"})
    assert made is not None and made.version_id == "v1"
    assert json.loads(requests[0].content) == {
        "strategy": "percentage",
        "versions": [{"version_id": "v1", "percentage": 100}],
        "annotations": {"workers/message": "back"},
    }
    [deployment] = api.list_deployments("a", "w")
    assert (deployment.message, deployment.version_id) == ("hi", "v1")
    api.delete_secret("a", "w", "MY SECRET")
    assert requests[-1].url.raw_path == (
        b"/client/v4/accounts/a/workers/scripts/w/secrets/MY%20SECRET?url_encoded=true"
    )
    api.delete("a", "w")
    assert requests[-1].method == "DELETE"
    assert requests[-1].url.path == "/client/v4/accounts/a/workers/services/w"


# -- tail -----------------------------------------------------------------------------------


class FakeSocket:
    def __init__(self, script: list[str | BaseException]) -> None:
        self.script = script
        self.sent: list[str] = []
        self.timeouts: list[float | None] = []

    def send(self, message: str) -> None:
        self.sent.append(message)

    def recv(self, timeout: float | None = None) -> str:
        self.timeouts.append(timeout)
        item = self.script.pop(0) if self.script else TimeoutError()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        pass


def test_tail_events_are_bounded() -> None:
    socket = FakeSocket(['{"outcome": "ok"}', "not json", '{"outcome": "exception"}', '{"n": 3}'])
    got = list(events(socket, max_events=2))
    assert got == [{"outcome": "ok"}, {"outcome": "exception"}]
    assert socket.sent == ['{"debug": false}']

    now = [100.0]
    socket = FakeSocket(['{"a": 1}'])
    assert list(events(socket, timeout=5, clock=lambda: now[0])) == [{"a": 1}]
    assert socket.timeouts == [5.0, 5.0]  # then TimeoutError ends the stream

    closed = ConnectionClosedOK(Close(1000, "bye"), Close(1000, "bye"), True)
    assert list(events(FakeSocket(['{"a": 1}', closed]))) == [{"a": 1}]
    broken = ConnectionClosedError(Close(1011, "crash"), None)
    with pytest.raises(TailError, match="closed unexpectedly"):
        list(events(FakeSocket([broken])))


def test_tail_filters_as_wrangler_sends_them() -> None:
    assert filters(("error",), ("get",), "needle", (("x-test", "1"),)) == [
        {"outcome": ["exception", "exceededCpu", "exceededMemory", "unknown"]},
        {"method": ["GET"]},
        {"header": {"key": "x-test", "query": "1"}},
        {"query": "needle"},
    ]
    assert filters() == []


def test_tail_create_and_delete() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.method == "POST":
            return ok({"id": "t1", "url": "ws://x/tail/secret", "expires_at": "soon"})
        return ok()

    api = client(handler).tails
    info = api.create("a", "w", [{"query": "x"}])
    assert (info.id, info.url) == ("t1", "ws://x/tail/secret")
    assert json.loads(requests[0].content) == {"filters": [{"query": "x"}]}
    api.delete("a", "w", "t1")
    assert requests[1].url.path == "/client/v4/accounts/a/workers/scripts/w/tails/t1"
