"""The SDK client: the wire at the boundary (MockTransport), and the real app in-process."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import Iterator
from datetime import timedelta
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import httpx
import pytest

from mayfly.app import Platform
from mayfly.sdk import (
    APIUnreachable,
    Deployer,
    MayflyAPIError,
    MayflyClient,
    TemporaryAccountCache,
    UploadModule,
    WorkerUpload,
    normalise_api_url,
    resolve_credentials,
)
from mayfly.sdk.errors import CredentialsError
from mayfly.services.identity.tokens import revoke_account_tokens
from tests.clock import ManualClock
from tests.unit.cli_support import app_transport

UPLOAD = WorkerUpload(
    main_module="src/index.js",
    modules=(
        UploadModule("src/index.js", b'import { g } from "./lib/g.js";\nexport default {};\n'),
        UploadModule("src/lib/g.js", b"export const g = 1;\n"),
    ),
    compatibility_date="2025-01-01",
    bindings=({"name": "GREETING", "type": "plain_text", "text": "hi"},),
)


def envelope(result: Any = None, *, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"success": not errors, "errors": errors or [], "messages": [], "result": result}


def mock(handler: Any) -> MayflyClient:
    return MayflyClient("http://api.test", token="tok", transport=httpx.MockTransport(handler))


def test_api_url_normalisation() -> None:
    assert normalise_api_url("http://LocalHost:8787/") == "http://localhost:8787"
    assert normalise_api_url("http://localhost:8787/client/v4/") == "http://localhost:8787"
    assert normalise_api_url("https://example.com/mayfly") == "https://example.com/mayfly"
    assert normalise_api_url("https://Example.com:443/") == "https://example.com"
    assert normalise_api_url("http://[::1]:8787/") == "http://[::1]:8787"
    with pytest.raises(ValueError, match="http"):
        normalise_api_url("ftp://x")
    with pytest.raises(ValueError, match="http"):
        normalise_api_url("localhost:8787")
    with pytest.raises(ValueError, match="http"):
        normalise_api_url("http://localhost:87a7")


def test_errors_become_mayfly_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/client/v4/accounts/abc"
        assert request.headers["authorization"] == "Bearer tok"
        return httpx.Response(
            401, json=envelope(errors=[{"code": 10001, "message": "expired; deploy again"}])
        )

    with pytest.raises(MayflyAPIError) as caught:
        mock(handler).get_account("abc")
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        10001,
        "expired; deploy again",
        401,
    )


def test_a_non_envelope_answer_is_code_0() -> None:
    client = mock(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(MayflyAPIError) as caught:
        client.get_account("abc")
    assert caught.value.code == 0 and caught.value.status == 502
    assert "not Cloudflare's JSON envelope" in caught.value.message


def test_no_answer_is_api_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(APIUnreachable, match=r"Could not reach the Mayfly API at http://api.test"):
        mock(handler).list_accounts()


def test_rate_limits_are_retried_with_retry_after() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(
                429,
                headers={"retry-after": "0"},
                json=envelope(errors=[{"code": 10429, "message": "slow down"}]),
            )
        return httpx.Response(200, json=envelope({"id": "abc", "name": "n"}))

    assert mock(handler).get_account("abc").name == "n"
    assert len(calls) == 2


def test_a_long_retry_after_is_not_waited_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"retry-after": "3600"},
            json=envelope(errors=[{"code": 10429, "message": "come back in an hour"}]),
        )

    with pytest.raises(MayflyAPIError, match="come back in an hour"):
        mock(handler).get_account("abc")


def test_list_accounts_follows_pages() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        items = [{"id": f"id{page}", "name": f"n{page}"}]
        info = {"page": page, "per_page": 1, "total_count": 3}
        return httpx.Response(200, json={**envelope(items), "result_info": info})

    assert [a.id for a in mock(handler).list_accounts()] == ["id1", "id2", "id3"]


def test_upload_is_cloudflare_multipart() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "PUT"
        assert request.url.path == "/client/v4/accounts/acc/workers/scripts/hello"
        raw = b"content-type: " + request.headers["content-type"].encode() + b"\r\n\r\n"
        message = BytesParser(policy=HTTP).parsebytes(raw + request.read())
        for part in message.iter_parts():
            seen[part.get_param("name", header="content-disposition")] = (
                part.get_filename(),
                part.get_content_type(),
                part.get_payload(decode=True),
            )
        return httpx.Response(
            200,
            json={
                **envelope({"deployment_id": "v-1", "url": "http://u"}),
                "messages": [{"code": 1, "message": "clamped"}],
            },
        )

    result = mock(handler).upload_script("acc", "hello", UPLOAD)
    assert (result.version_id, result.url, result.messages) == ("v-1", "http://u", ("clamped",))
    filename, content_type, payload = seen["metadata"]
    assert filename is None and content_type == "application/json"
    assert json.loads(payload) == {
        "main_module": "src/index.js",
        "compatibility_date": "2025-01-01",
        "bindings": [{"name": "GREETING", "type": "plain_text", "text": "hi"}],
        "keep_bindings": ["secret_text", "secret_key"],
    }
    assert seen["src/lib/g.js"] == (
        "src/lib/g.js",
        "application/javascript+module",
        b"export const g = 1;\n",
    )


# -- against the real app, in-process ---------------------------------------------------------


@pytest.fixture
def transport(platform: Platform) -> Iterator[httpx.MockTransport]:
    with app_transport(platform.public_app()) as t:
        yield t


@pytest.fixture
def client(transport: httpx.MockTransport) -> Iterator[MayflyClient]:
    with MayflyClient("http://localhost:8787", transport=transport) as c:
        yield c


def deployer(client: MayflyClient, tmp_path: Path) -> Deployer:
    return Deployer.quiet(client, TemporaryAccountCache(tmp_path / "config"))


def resolution(client: MayflyClient, tmp_path: Path, clock: ManualClock, **kw: Any) -> Any:
    return resolve_credentials(
        client.api_url, now=clock.now(), environ={}, directory=tmp_path / "config", **kw
    )


def test_temporary_deploy_then_reuse(
    client: MayflyClient, tmp_path: Path, clock: ManualClock
) -> None:
    d = deployer(client, tmp_path)
    first = d.deploy("hello", UPLOAD, resolution(client, tmp_path, clock), temporary=True)
    assert first.created_account and first.temporary is not None
    assert first.url == f"http://hello.{first.account.name}.localhost:8788"
    assert set(d.timings.phases) == {"pow", "provision", "upload"}

    again = resolution(client, tmp_path, clock)
    assert again.credentials is not None and again.credentials.source == "temporary"
    second = d.deploy("hello", UPLOAD, again, temporary=True)
    assert not second.created_account
    assert second.account.id == first.account.id
    assert second.version_id != first.version_id


def test_no_credentials_without_temporary(
    client: MayflyClient, tmp_path: Path, clock: ManualClock
) -> None:
    with pytest.raises(CredentialsError, match="--temporary"):
        deployer(client, tmp_path).deploy("hello", UPLOAD, resolution(client, tmp_path, clock))


def test_an_account_the_server_expired_is_replaced(
    client: MayflyClient, tmp_path: Path, clock: ManualClock, platform: Platform
) -> None:
    d = deployer(client, tmp_path)
    first = d.deploy("hello", UPLOAD, resolution(client, tmp_path, clock), temporary=True)
    cached = resolution(client, tmp_path, clock)  # still valid by the client's clock
    clock.advance(platform.settings.temporary_ttl + 1)
    with pytest.raises(MayflyAPIError) as caught:
        d.deploy("hello", UPLOAD, cached)
    assert caught.value.code == 10001
    assert "removed from the cache" in caught.value.message
    assert d.cache.load(client.api_url) is None

    d.cache.save(client.api_url, cached.credentials.temporary)
    second = d.deploy("hello", UPLOAD, cached, temporary=True)
    assert second.created_account and second.account.id != first.account.id
    assert any("expired or was deleted" in n for n in second.notices)


def test_a_claimed_account_is_dropped(
    client: MayflyClient, tmp_path: Path, clock: ManualClock, platform: Platform
) -> None:
    d = deployer(client, tmp_path)
    first = d.deploy("hello", UPLOAD, resolution(client, tmp_path, clock), temporary=True)
    with platform.db.begin() as conn:
        revoke_account_tokens(conn, first.account.id, "claimed", clock.now())
    with pytest.raises(MayflyAPIError) as caught:
        d.deploy("hello", UPLOAD, resolution(client, tmp_path, clock), temporary=True)
    assert caught.value.code == 10002
    assert "claimed by a human" in caught.value.message
    assert d.cache.load(client.api_url) is None


def test_a_token_deploys_into_its_account(
    client: MayflyClient, tmp_path: Path, clock: ManualClock, platform: Platform
) -> None:
    account, token = platform.services.accounts.create_permanent("perm-acct")
    d = deployer(client, tmp_path)
    deployed = d.deploy("hello", UPLOAD, resolution(client, tmp_path, clock, flag_token=token))
    assert deployed.account.id == account.id and deployed.temporary is None
    assert deployed.url == "http://hello.perm-acct.localhost:8788"
    with pytest.raises(CredentialsError) as caught:
        d.deploy(
            "hello",
            UPLOAD,
            resolution(client, tmp_path, clock, flag_token=token),
            temporary=True,
        )
    assert caught.value.code == "temporary_conflict"


def test_upload_errors_keep_the_api_code(
    client: MayflyClient, tmp_path: Path, clock: ManualClock
) -> None:
    bad = WorkerUpload("index.js", (UploadModule("index.js", b"x"),), compatibility_flags=("nope",))
    with pytest.raises(MayflyAPIError) as caught:
        deployer(client, tmp_path).deploy(
            "hello", bad, resolution(client, tmp_path, clock), temporary=True
        )
    assert caught.value.code == 10021 and caught.value.status == 400
    assert "nope" in caught.value.message


def test_expired_cache_is_announced_and_replaced(
    client: MayflyClient, tmp_path: Path, clock: ManualClock
) -> None:
    d = deployer(client, tmp_path)
    d.deploy("hello", UPLOAD, resolution(client, tmp_path, clock), temporary=True)
    later = resolve_credentials(
        client.api_url,
        now=clock.now() + timedelta(hours=2),
        environ={},
        directory=tmp_path / "config",
    )
    assert later.credentials is None and later.expired is not None
    redeployed = d.deploy("hello", UPLOAD, later, temporary=True)
    assert redeployed.created_account
    assert redeployed.notices[0].startswith(f"The temporary account {later.expired.name} expired")


def test_a_503_without_retry_after_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json=envelope(errors=[{"code": 10060, "message": "suspended"}]))

    with pytest.raises(MayflyAPIError) as caught:
        mock(handler).get_account("abc")
    assert caught.value.code == 10060 and len(calls) == 1


def test_an_account_cached_meanwhile_is_reused(
    client: MayflyClient, tmp_path: Path, clock: ManualClock
) -> None:
    other = deployer(client, tmp_path)
    before = resolution(client, tmp_path, clock)  # nothing cached yet…
    first = other.deploy("one", UPLOAD, resolution(client, tmp_path, clock), temporary=True)
    # …but by the time this deploy provisions, another process has cached an account.
    second = deployer(client, tmp_path).deploy("two", UPLOAD, before, temporary=True)
    assert not second.created_account
    assert second.account.id == first.account.id


def test_concurrent_temporary_deploys_share_one_account(
    client: MayflyClient, tmp_path: Path, clock: ManualClock
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def deploy(name: str) -> Any:
        return deployer(client, tmp_path).deploy(
            name, UPLOAD, resolution(client, tmp_path, clock), temporary=True
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(deploy, ["one", "two"]))
    assert len({r.account.id for r in results}) == 1
    assert sorted(r.created_account for r in results) == [False, True]
    lock = tmp_path / "config" / "temporary-accounts.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_an_unwritable_cache_does_not_lose_the_account(
    client: MayflyClient, tmp_path: Path, clock: ManualClock
) -> None:
    notices: list[str] = []
    d = deployer(client, tmp_path)
    d.listener.notice = notices.append  # type: ignore[method-assign]
    d.cache.path.parent.mkdir(parents=True)
    d.cache.path.mkdir()  # a directory where the file should be: writing fails
    deployed = d.deploy("hello", UPLOAD, resolution(client, tmp_path, clock), temporary=True)
    assert deployed.created_account and deployed.temporary is not None
    assert any("could not cache the temporary account" in n for n in notices)


def test_an_http_api_loads_no_ca_bundle_and_an_https_one_verifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mayfly.sdk.transport import tls_context  # both transports' (httpx's `verify` too)

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    https = tls_context("https://mayfly.example")  # httpx's default: certifi's bundle
    assert https.verify_mode == ssl.CERT_REQUIRED and https.check_hostname
    assert https.cert_store_stats()["x509_ca"] > 0
    context = tls_context("http://localhost:8787")
    # Never used for an http:// API; were it ever, it would verify against nothing and fail.
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
