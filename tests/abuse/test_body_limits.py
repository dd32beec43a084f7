"""Bodies are capped while they stream and credentials come first (issue 10, item 2).

Against a real `mayfly serve` in a subprocess: 300 MB bodies, declared or chunked, must be
answered without the server's memory growing by more than 20 MB (VmHWM and VmRSS from /proc).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.abuse.raw_http import MB, Answer, megabytes, memory_kib, provision, send
from tests.e2e.conftest import Server, running_server

GROWTH_LIMIT_KIB = 20 * 1024
HUGE_MB = 300
BOUNDARY = "mayflyboundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("limits"), ttl=3600, runtime=False) as live:
        yield live


@pytest.fixture(scope="module")
def account(server: Server) -> dict[str, Any]:
    return provision(server.api_url)


def _warm(server: Server, account: dict[str, Any]) -> None:
    """A few ordinary requests first, so that the baseline includes what they allocate."""
    with httpx.Client(base_url=server.api_url + "/client/v4", timeout=30) as client:
        for _ in range(3):
            client.get(
                f"/accounts/{account['id']}/storage/kv/namespaces",
                headers={"authorization": f"Bearer {account['apiToken']}"},
            )


def _measured(server: Server, account: dict[str, Any], request: Any) -> tuple[Answer, int]:
    """The answer, and how much the server's memory grew (the larger of peak and current)."""
    _warm(server, account)
    before = memory_kib(server.process.pid)
    answer = request()
    after = memory_kib(server.process.pid)
    growth = max(after["VmHWM"] - before["VmHWM"], after["VmRSS"] - before["VmRSS"])
    return answer, growth


def _multipart_head(name: str, filename: str, content_type: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
        f"\r\nContent-Type: {content_type}\r\n\r\n"
    ).encode()


def _huge_multipart(prefix: bytes) -> Iterator[bytes]:
    yield prefix
    yield from megabytes(HUGE_MB)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _script_upload_prefix() -> bytes:
    metadata = json.dumps({"main_module": "index.js", "compatibility_date": "2025-01-01"})
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{metadata}\r\n'
    ).encode() + _multipart_head("index.js", "index.js", "application/javascript+module")


def _assert_envelope(answer: Answer, status: int, code: int | None = None) -> None:
    assert answer.status == status, answer.body[:500]
    body = answer.json()
    assert body["success"] is False
    if code is not None:
        assert body["errors"][0]["code"] == code, body


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_junk_token_asset_upload_gets_401_before_the_body_is_read(
    server: Server, account: dict[str, Any], declared: bool
) -> None:
    prefix = _multipart_head("0123456789abcdef0123456789abcdef", "x", "text/plain")
    length = len(prefix) + HUGE_MB * MB + len(f"\r\n--{BOUNDARY}--\r\n") if declared else None
    answer, growth = _measured(
        server,
        account,
        lambda: send(
            server.api_port,
            "POST",
            f"/client/v4/accounts/{account['id']}/workers/assets/upload?base64=true",
            {
                "Authorization": "Bearer junk",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            },
            _huge_multipart(prefix),
            length=length,
        ),
    )
    _assert_envelope(answer, 401)
    assert growth < GROWTH_LIMIT_KIB, f"the server grew by {growth} KiB"


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [("junk", 400, 6003), ("mfp_" + "x" * 43, 401, 9109)],
    ids=["malformed", "unknown"],
)
def test_junk_token_script_upload_is_refused_before_the_body_is_read(
    server: Server, account: dict[str, Any], token: str, status: int, code: int
) -> None:
    answer, growth = _measured(
        server,
        account,
        lambda: send(
            server.api_port,
            "PUT",
            f"/client/v4/accounts/{account['id']}/workers/scripts/big",
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            },
            _huge_multipart(_script_upload_prefix()),
        ),
    )
    _assert_envelope(answer, status, code)
    assert growth < GROWTH_LIMIT_KIB, f"the server grew by {growth} KiB"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_oversize_script_upload_gets_413_while_it_streams(
    server: Server, account: dict[str, Any], declared: bool
) -> None:
    prefix = _script_upload_prefix()
    length = len(prefix) + HUGE_MB * MB + len(f"\r\n--{BOUNDARY}--\r\n") if declared else None
    answer, growth = _measured(
        server,
        account,
        lambda: send(
            server.api_port,
            "PUT",
            f"/client/v4/accounts/{account['id']}/workers/scripts/big",
            {
                "Authorization": f"Bearer {account['apiToken']}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            },
            _huge_multipart(prefix),
            length=length,
        ),
    )
    _assert_envelope(answer, 413, 10413)
    assert growth < GROWTH_LIMIT_KIB, f"the server grew by {growth} KiB"


def _namespace(server: Server, account: dict[str, Any], title: str) -> str:
    with httpx.Client(base_url=server.api_url + "/client/v4", timeout=30) as client:
        created = client.post(
            f"/accounts/{account['id']}/storage/kv/namespaces",
            json={"title": title},
            headers={"authorization": f"Bearer {account['apiToken']}"},
        )
        assert created.status_code == 200, created.text
        namespace_id: str = created.json()["result"]["id"]
        return namespace_id


def test_300_mb_kv_put_gets_413_without_buffering(server: Server, account: dict[str, Any]) -> None:
    namespace = _namespace(server, account, "huge-values")
    answer, growth = _measured(
        server,
        account,
        lambda: send(
            server.api_port,
            "PUT",
            f"/client/v4/accounts/{account['id']}/storage/kv/namespaces/{namespace}/values/k",
            {"Authorization": f"Bearer {account['apiToken']}"},
            megabytes(HUGE_MB),
            length=HUGE_MB * MB,
        ),
    )
    _assert_envelope(answer, 413, 10413)
    assert growth < GROWTH_LIMIT_KIB, f"the server grew by {growth} KiB"


def test_chunked_kv_put_is_cut_off_at_the_value_limit(
    server: Server, account: dict[str, Any]
) -> None:
    """Without a Content-Length the value is counted as it arrives: at most one value held."""
    namespace = _namespace(server, account, "chunked-values")
    answer, growth = _measured(
        server,
        account,
        lambda: send(
            server.api_port,
            "PUT",
            f"/client/v4/accounts/{account['id']}/storage/kv/namespaces/{namespace}/values/k",
            {"Authorization": f"Bearer {account['apiToken']}"},
            megabytes(HUGE_MB),
        ),
    )
    _assert_envelope(answer, 413, 10413)
    assert growth < 25 * 1024 + GROWTH_LIMIT_KIB, f"the server grew by {growth} KiB"


def test_a_100_kb_kv_key_is_a_4xx_in_the_envelope(server: Server, account: dict[str, Any]) -> None:
    namespace = _namespace(server, account, "long-keys")
    answer = send(
        server.api_port,
        "PUT",
        f"/client/v4/accounts/{account['id']}/storage/kv/namespaces/{namespace}/values/"
        + "k" * 100_000,
        {"Authorization": f"Bearer {account['apiToken']}"},
        [b"value"],
        length=5,
    )
    assert 400 <= answer.status < 500, answer.body[:300]
    assert answer.json()["success"] is False
