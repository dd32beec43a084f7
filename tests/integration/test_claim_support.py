"""Helpers for the page tests: a cookie-keeping browser over the in-process app (no tests here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, upload_body

PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, with parameters that take milliseconds rather than 0.3 s per hash."""
    monkeypatch.setattr(
        "mayfly.services.identity.users.PasswordHasher",
        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )


class Web:
    """A browser without JavaScript: keeps cookies, reads CSRF tokens from the pages it gets."""

    def __init__(self, client: TestClient):
        self.client = client
        self.last: httpx.Response | None = None

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        self.last = self.client.get(path, **kwargs)
        return self.last

    def csrf(self, page: str | None = None) -> str:
        html = self.get(page).text if page else (self.last.text if self.last else "")
        found = CSRF_RE.search(html)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def post(
        self, path: str, data: dict[str, str] | None = None, *, page: str | None = None, **kw: Any
    ) -> httpx.Response:
        """POST a form with the CSRF token of `page` (default: the page just fetched)."""
        form = {"csrf_token": self.csrf(page), **(data or {})}
        self.last = self.client.post(path, data=form, **kw)
        return self.last

    def signup(self, email: str, password: str = PASSWORD, next_url: str = "") -> httpx.Response:
        return self.post(
            "/signup",
            {"email": email, "password": password, "next": next_url},
            page="/signup",
        )

    def login(self, email: str, password: str = PASSWORD, next_url: str = "") -> httpx.Response:
        return self.post(
            "/login", {"email": email, "password": password, "next": next_url}, page="/login"
        )


@contextmanager
def web(platform: Platform, base_url: str = "http://localhost:8787") -> Iterator[Web]:
    with TestClient(platform.public_app(), base_url=base_url, follow_redirects=False) as client:
        yield Web(client)


def claim_path(provisioned: dict[str, Any]) -> str:
    url: str = provisioned["claim"]["url"]
    return "/" + url.split("/", 3)[3]


def deploy(
    api: TestClient, account_id: str, token: str, script: str = "hello", **meta: Any
) -> dict[str, Any]:
    response = api.put(
        f"accounts/{account_id}/workers/scripts/{script}",
        headers=auth(token),
        **upload_body(**meta),
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def kv_namespace(api: TestClient, account_id: str, token: str, title: str) -> str:
    response = api.post(
        f"accounts/{account_id}/storage/kv/namespaces", headers=auth(token), json={"title": title}
    )
    assert response.status_code == 200, response.text
    namespace_id: str = response.json()["result"]["id"]
    return namespace_id


def kv_put(api: TestClient, account_id: str, token: str, ns: str, key: str, value: str) -> None:
    response = api.put(
        f"accounts/{account_id}/storage/kv/namespaces/{ns}/values/{key}",
        headers=auth(token),
        content=value.encode(),
    )
    assert response.status_code == 200, response.text
