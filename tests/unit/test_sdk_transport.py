"""The SDK's plain transport (mayfly/sdk/transport.py, http.client) against a real HTTP server: what
goes on the wire is what httpx sends for the same call, and failures read the same."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mayfly.sdk import APIUnreachable, MayflyAPIError, MayflyClient, UploadModule, WorkerUpload
from mayfly.sdk.wire import USER_AGENT
from tests.unit.test_cli_imports import closed_port

Seen = dict[str, Any]
UPLOAD = WorkerUpload(
    main_module="src/index.js",
    modules=(
        UploadModule("src/index.js", b'import { g } from "./lib/g.js";\nexport default {};\n'),
        UploadModule("src/lib/g.js", b"export const g = 1;\n"),
    ),
    compatibility_date="2025-01-01",
)
Answer = tuple[int, dict[str, str], bytes]


def envelope(result: Any = None, errors: list[dict[str, Any]] | None = None) -> bytes:
    body = {"success": not errors, "errors": errors or [], "messages": [], "result": result}
    return json.dumps(body).encode()


class Server:
    """A keep-alive HTTP/1.1 server: records each request, answers with `answer(request)`; over
    TLS with `tls` (a context holding the server's certificate)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[Seen] = []
        self.connections: set[int] = set()  # the client's ports
        self.closed = threading.Event()  # set whenever the server closed a connection
        self.answer: Callable[[Seen], Answer] = lambda seen: (200, {}, envelope({"id": "a"}))
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one_request(self) -> None:
                server.connections.add(self.client_address[1])
                super().handle_one_request()

            def respond(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen = {
                    "method": self.command,
                    "target": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": self.rfile.read(length),
                }
                server.seen.append(seen)
                status, headers, body = server.answer(seen)
                if headers.pop("x-close-silently", None):
                    self.close_connection = True  # without saying so
                self.send_response(status)
                for name, value in {"content-length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = respond

        class HTTPServer(ThreadingHTTPServer):
            def shutdown_request(self, request: Any) -> None:
                super().shutdown_request(request)
                server.closed.set()

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        if tls is not None:
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
            self.url = f"https://localhost:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    running = Server()
    yield running
    running.close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost (its own issuer) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_is_verified_as_httpx_verifies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https:// API: certifi's bundle does not know a self-signed certificate (ConnectError,
    through either transport); SSL_CERT_FILE naming it makes it trusted (by both)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "SSL_CERT_DIR", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = Server(tls)
    try:
        for transport in (None, httpx.HTTPTransport()):
            refused = pytest.raises(APIUnreachable, match=r"\(ConnectError: .*CERTIFICATE_VERIFY")
            with MayflyClient(server.url, transport=transport) as client, refused:
                client.call("GET", "/accounts/a")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        for transport in (None, httpx.HTTPTransport()):
            with MayflyClient(server.url, transport=transport) as client:
                assert client.call("GET", "/accounts/a") == {"id": "a"}
        assert len(server.seen) == 2
    finally:
        server.close()


def calls(client: MayflyClient) -> None:
    client.call("GET", "/accounts/a b/ü", params={"page": 2, "force": False, "q": "x y&z"})
    client.call("POST", "/accounts/a/things", json={"name": "é", "n": [1, 2.5, None]})
    client.call("PUT", "/accounts/a/values/k%2Fv", content=b"\x00raw", headers={"X-Extra": "1"})
    client.call("PUT", "/accounts/a/empty")
    client.call("DELETE", "/accounts/a/things/t", params={"url_encoded": "true"})
    client.upload_script("a", "w", UPLOAD)
    files = {
        'v"a\\l\nue': ("nämé.bin", b"\x00\r\n--x", "application/octet-stream"),
        "metadata": (None, '{"k": "é"}', "application/json"),
    }
    client.call("PUT", "/accounts/a/values/k", params={"expiration_ttl": 60}, files=files)


def wire(seen: Seen) -> tuple[Any, ...]:
    """The request as the server read it; a multipart boundary (random) replaced by a constant."""
    headers = seen["headers"]
    kept = ("authorization", "content-type", "content-length", "user-agent", "x-extra", "accept")
    fields = {h: headers.get(h) for h in kept}
    body = seen["body"]
    if (fields["content-type"] or "").startswith("multipart/form-data; boundary="):
        boundary = fields["content-type"].split("boundary=", 1)[1]
        fields["content-type"] = fields["content-type"].replace(boundary, "B")
        body = body.replace(boundary.encode(), b"B")
    return (seen["method"], seen["target"], body, fields)


def test_the_wire_is_the_same_as_httpx(server: Server) -> None:
    with MayflyClient(server.url, token="mft_t") as plain:
        calls(plain)
    through_plain = [wire(s) for s in server.seen]
    # http.client's own Accept-Encoding: each of these calls, uploads too, went through it
    assert {s["headers"]["accept-encoding"] for s in server.seen} == {"identity"}
    server.seen.clear()
    with MayflyClient(server.url, token="mft_t", transport=httpx.HTTPTransport()) as via_httpx:
        calls(via_httpx)
    assert through_plain == [wire(s) for s in server.seen]
    assert through_plain[0][1] == "/client/v4/accounts/a%20b/%C3%BC?page=2&force=false&q=x+y%26z"
    assert through_plain[1][3]["user-agent"] == USER_AGENT


def test_connections_are_kept_alive_and_shared_with_token_copies(server: Server) -> None:
    with MayflyClient(server.url) as client:
        client.call("GET", "/a")
        client.with_token("mft_t").call("GET", "/b")
        client.call("GET", "/c")
    assert len(server.connections) == 1
    assert server.seen[1]["headers"]["authorization"] == "Bearer mft_t"
    assert "authorization" not in server.seen[2]["headers"]


@pytest.mark.parametrize("closing", [{"connection": "close"}, {"x-close-silently": "1"}])
def test_a_connection_the_server_closed_is_not_reused(
    server: Server, closing: dict[str, str]
) -> None:
    server.answer = lambda seen: (200, dict(closing) if "/a" in seen["target"] else {}, envelope())
    with MayflyClient(server.url) as client:
        client.call("GET", "/a")  # the server closes this connection after answering
        assert server.closed.wait(10)
        client.call("GET", "/b")
        client.call("GET", "/c")
    assert len(server.connections) == 2


def test_a_connection_in_use_when_the_client_closes_is_closed_after_its_answer(
    server: Server,
) -> None:
    asked, answer_now = threading.Event(), threading.Event()

    def answer(seen: Seen) -> Answer:
        asked.set()
        answer_now.wait(30)
        return 200, {}, envelope({"id": "a"})

    server.answer = answer
    client = MayflyClient(server.url)
    results: list[Any] = []
    caller = threading.Thread(target=lambda: results.append(client.call("GET", "/slow")))
    caller.start()
    assert asked.wait(10)
    client.close()
    answer_now.set()
    caller.join(10)
    assert results == [{"id": "a"}]
    assert server.closed.wait(10)  # the client closed it: the server saw the end of the stream


def test_errors_and_non_envelopes(server: Server) -> None:
    def answer(seen: Seen) -> Answer:
        if seen["target"].endswith("/denied"):
            return 403, {}, envelope(errors=[{"code": 9109, "message": "Forbidden"}])
        return 502, {"content-type": "text/html"}, b"<html>bad gateway</html>"

    server.answer = answer
    with MayflyClient(server.url) as client:
        with pytest.raises(MayflyAPIError) as denied:
            client.call("GET", "/denied")
        with pytest.raises(MayflyAPIError) as gateway:
            client.call("GET", "/other")
    assert (denied.value.code, denied.value.status, denied.value.message) == (
        9109,
        403,
        "Forbidden",
    )
    assert (gateway.value.code, gateway.value.status) == (0, 502)


def test_a_rate_limit_is_retried_after_retry_after(server: Server) -> None:
    def answer(seen: Seen) -> Answer:
        if len(server.seen) == 1:
            return 429, {"retry-after": "0"}, envelope(errors=[{"code": 10429, "message": "wait"}])
        return 200, {}, envelope({"ok": True})

    server.answer = answer
    with MayflyClient(server.url) as client:
        assert client.call("POST", "/x", json={}) == {"ok": True}
    assert len(server.seen) == 2


def test_no_server_is_api_unreachable_named_as_httpx_names_it() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with MayflyClient(url) as client, pytest.raises(APIUnreachable) as caught:
        client.call("GET", "/accounts")
    assert caught.value.message.startswith(
        f"Could not reach the Mayfly API at {url} (ConnectError: "
    )


def test_a_header_that_cannot_be_sent_is_api_unreachable_as_with_httpx(server: Server) -> None:
    for transport in (None, httpx.HTTPTransport()):
        client = MayflyClient(server.url, token="mft_t\n", transport=transport)
        with client, pytest.raises(APIUnreachable, match=r"\(LocalProtocolError: "):
            client.call("GET", "/accounts")
    assert server.seen == []


def test_a_server_that_does_not_answer_in_time_is_a_read_timeout(server: Server) -> None:
    def answer(seen: Seen) -> Answer:
        server.release.wait(30)  # set when the test ends
        return 200, {}, envelope()

    server.answer = answer
    with MayflyClient(server.url, timeout=0.2) as client, pytest.raises(APIUnreachable) as caught:
        client.call("GET", "/slow")
    assert "(ReadTimeout: " in caught.value.message


def test_with_a_proxy_in_the_environment_requests_go_through_it(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx applies HTTP_PROXY; so the client sends everything through httpx when one is set."""
    monkeypatch.setenv("HTTP_PROXY", server.url)
    with MayflyClient("http://api.example:8787", token="mft_t") as client:
        assert client.call("GET", "/accounts/a") == {"id": "a"}
    assert server.seen[0]["target"] == "http://api.example:8787/client/v4/accounts/a"
