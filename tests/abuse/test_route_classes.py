"""The body limits middleware: which cap each route gets, and 413 in the envelope (in process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from mayfly.api.limits import MULTIPART_OVERHEAD, BodyLimits
from mayfly.app import Platform
from mayfly.settings import Settings

S = Settings()
A = "/accounts/0123/"


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    pass


LIMITS = BodyLimits(_nothing, S)


@pytest.mark.parametrize("prefix", ["/client/v4", ""])
@pytest.mark.parametrize(
    ("method", "path", "setting", "limit"),
    [
        (
            "PUT",
            A + "workers/scripts/w",
            "max_upload_bytes",
            S.max_upload_bytes + MULTIPART_OVERHEAD,
        ),
        (
            "POST",
            A + "workers/scripts/w/versions",
            "max_upload_bytes",
            S.max_upload_bytes + MULTIPART_OVERHEAD,
        ),
        (
            "PUT",
            A + "storage/kv/namespaces/n/values/a%2Fb",
            "max_kv_value_bytes",
            S.max_kv_value_bytes + MULTIPART_OVERHEAD,
        ),
        ("PUT", A + "storage/kv/namespaces/n/bulk", "max_kv_bulk_bytes", S.max_kv_bulk_bytes),
        (
            "POST",
            A + "storage/kv/namespaces/n/bulk/delete",
            "max_kv_bulk_bytes",
            S.max_kv_bulk_bytes,
        ),
        ("POST", A + "workers/assets/upload", "max_asset_body_bytes", S.max_asset_body_bytes),
        (
            "POST",
            A + "workers/scripts/w/assets-upload-session",
            "max_manifest_body_bytes",
            S.max_manifest_body_bytes,
        ),
        ("PUT", A + "workers/scripts/w/secrets", "max_json_body_bytes", S.max_json_body_bytes),
        ("PATCH", A + "workers/scripts/w/script-settings", "max_json_body_bytes", 1024 * 1024),
        ("POST", "/provisioning/previews", "max_json_body_bytes", S.max_json_body_bytes),
    ],
)
def test_route_classes(prefix: str, method: str, path: str, setting: str, limit: int) -> None:
    route_class = LIMITS.route_class(method, prefix + path)
    assert (route_class.setting, route_class.limit) == (setting, limit)


@pytest.mark.parametrize("path", ["/login", "/signup", "/device", "/oauth/device/code"])
def test_forms_have_the_form_cap(path: str) -> None:
    route_class = LIMITS.route_class("POST", path)
    assert route_class.setting == "max_form_body_bytes"


@pytest.fixture
def app_client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(platform.public_app(), base_url="http://testserver") as client:
        yield client


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // 4096):
        yield b"{" * 4096


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_unauthenticated_json_body_over_its_cap_is_413(
    app_client: TestClient, chunked: bool
) -> None:
    size = 2 * 1024 * 1024
    body = _chunks(size) if chunked else b"{" * size
    response = app_client.post("/client/v4/provisioning/previews", content=body)
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == 10413
    assert "max_json_body_bytes" in response.json()["errors"][0]["message"]


def test_a_page_form_over_its_cap_is_413(app_client: TestClient) -> None:
    response = app_client.post(
        "/login",
        content=b"email=" + b"a" * 100_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
