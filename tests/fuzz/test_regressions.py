"""What the fuzz run found, one test each, so that a fix stays fixed without the fuzzer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import auth, make_settings, provision, upload_body


@pytest.fixture
def worker(client: TestClient) -> tuple[str, str]:
    created = provision(client)["account"]
    path = f"accounts/{created['id']}/workers/scripts/fuzzed"
    uploaded = client.put(path, headers=auth(created["apiToken"]), **upload_body())
    assert uploaded.status_code == 200, uploaded.text
    return path, created["apiToken"]


@pytest.mark.parametrize(
    "body",
    [
        {"tail_consumers": [[None, None]]},
        {"tail_consumers": [{"service": 1}]},
        {"tail_consumers": "worker"},
        {"tags": [1]},
        {"tags": "a"},
        {"logpush": "yes"},
        {"observability": [True]},
    ],
)
def test_script_settings_of_the_wrong_type_are_refused_and_not_stored(
    client: TestClient, worker: tuple[str, str], body: dict[str, Any]
) -> None:
    path, token = worker
    patched = client.patch(f"{path}/script-settings", headers=auth(token), json=body)
    assert patched.status_code == 400, patched.text
    assert patched.json()["errors"][0]["code"] == 10021
    settings = client.get(f"{path}/script-settings", headers=auth(token)).json()["result"]
    assert settings["tail_consumers"] == [] and settings["tags"] == []
    assert settings["logpush"] is False and settings["observability"] == {"enabled": False}


def test_script_settings_of_the_right_type_are_stored(
    client: TestClient, worker: tuple[str, str]
) -> None:
    path, token = worker
    body = {
        "logpush": True,
        "observability": {"enabled": True},
        "tags": ["a"],
        "tail_consumers": [{"service": "logs"}],
    }
    patched = client.patch(f"{path}/script-settings", headers=auth(token), json=body)
    assert patched.status_code == 200, patched.text
    assert {k: patched.json()["result"][k] for k in body} == body


@pytest.fixture
def any_backend(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    platform = Platform.create(make_settings(tmp_path, database_url=database_url))
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        yield client
    platform.db.dispose()


def test_nul_characters_are_a_400_on_every_backend(any_backend: TestClient) -> None:
    """PostgreSQL refuses NUL in text (psycopg's DataError was a 500); SQLite stored it."""
    client = any_backend
    created = provision(client)["account"]
    token, base = created["apiToken"], f"accounts/{created['id']}"
    namespaces = f"{base}/storage/kv/namespaces"
    ns = client.post(namespaces, headers=auth(token), json={"title": "kv"}).json()["result"]["id"]
    sent = [
        client.post(namespaces, headers=auth(token), json={"title": "a\x00b"}),
        client.put(f"{namespaces}/{ns}", headers=auth(token), json={"title": "a\x00b"}),
        client.post(f"{namespaces}/{ns}/bulk/delete", headers=auth(token), json=["k\x00"]),
        client.put(
            f"{namespaces}/{ns}/bulk", headers=auth(token), json=[{"key": "\x00", "value": "v"}]
        ),
        client.put(f"{namespaces}/{ns}/values/a%00b", headers=auth(token), content=b"v"),
        client.get(f"{namespaces}/{ns}/values/a%00b", headers=auth(token)),
        client.get(f"{namespaces}/{ns}/keys?prefix=%00", headers=auth(token)),
        client.get(f"{namespaces}/x%00y", headers=auth(token)),
        client.get(f"accounts/{created['id']}%00", headers=auth(token)),
        client.get(f"{base}/workers/scripts/x/versions/v%00", headers=auth(token)),
    ]
    for response in sent:
        assert response.status_code in (400, 403, 404), (response.request.url, response.text)
        assert response.json()["success"] is False
    assert [r.status_code for r in sent[:6]] == [400] * 6
    # a value may hold NUL bytes: it is stored as bytes
    value = f"{namespaces}/{ns}/values/k"
    assert client.put(value, headers=auth(token), content=b"a\x00b").status_code == 200
    assert client.get(value, headers=auth(token)).content == b"a\x00b"


def test_a_namespace_title_over_512_characters_is_a_400_on_every_backend(
    any_backend: TestClient,
) -> None:
    """PostgreSQL's varchar(512) refused a long title on rename with a 500; SQLite stored it."""
    client = any_backend
    created = provision(client)["account"]
    token = created["apiToken"]
    namespaces = f"accounts/{created['id']}/storage/kv/namespaces"
    ns = client.post(namespaces, headers=auth(token), json={"title": "kv"}).json()["result"]["id"]
    long = {"title": "t" * 513}
    for response in (
        client.post(namespaces, headers=auth(token), json=long),
        client.put(f"{namespaces}/{ns}", headers=auth(token), json=long),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["code"] == 10021
    renamed = client.put(f"{namespaces}/{ns}", headers=auth(token), json={"title": "t" * 512})
    assert renamed.status_code == 200, renamed.text


def test_a_multipart_body_starlette_cannot_parse_is_a_400_in_the_envelope(
    client: TestClient, worker: tuple[str, str]
) -> None:
    """Starlette's own HTTPException (here: no boundary) answered plain text."""
    path, token = worker
    response = client.patch(
        f"{path}/settings",
        headers={**auth(token), "content-type": "multipart/form-data"},
        content=b"settings=1",
    )
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert response.json()["errors"][0]["code"] == 10021
