"""Every route that takes JSON answers bad JSON with a 4xx in its envelope, never a 500.

The routes come from the route table (api/routes.py and the OAuth routes); a handler takes JSON
when its source reads it (json_body, strict_json, an upload's metadata part, OAuth's params).
Each gets deeply nested JSON, integers of 10^30, the wrong top-level type (400 each), and bodies
whose every plausible field has the wrong type (some 4xx, never a 500).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.routing import Route
from starlette.testclient import TestClient

from mayfly.api import oauth
from mayfly.api.routes import api_routes
from mayfly.app import Platform
from tests.conftest import HELLO, POSTGRES_URL, _pg, auth, make_settings, missing, upload_body

JSON_READERS = ("json_body(", "strict_json.loads(", "_params(request)")
MULTIPART_METADATA = ("read_upload(", "_value_and_metadata(")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# Every field name a body of this API uses, to give each the wrong type at once.
FIELDS = [
    "title",
    "name",
    "manifest",
    "filters",
    "subdomain",
    "enabled",
    "expires_on",
    "account_id",
    "text",
    "type",
    "strategy",
    "versions",
    "percentage",
    "version_id",
    "annotations",
    "logpush",
    "tail_consumers",
    "observability",
    "acceptTermsOfService",
    "challengeToken",
    "solution",
    "checkpoints",
    "client_id",
    "grant_type",
    "device_code",
    "key",
    "value",
    "base64",
    "expiration",
    "expiration_ttl",
    "metadata",
    "main_module",
    "compatibility_date",
    "compatibility_flags",
    "bindings",
    "keep_bindings",
    "assets",
    "jwt",
    "config",
    "usage_model",
    "policies",
    "placement",
    "tags",
    "deployment_id",
    "message",
    "workers_message",
    "dump_options",
]
WRONG_VALUES: list[Any] = [[], {}, True, -1, 1.5, "", None, [{"x": [1]}], 2**62, -(2**62)]
# A list of objects fits no field of this API except where any JSON is welcome: KV metadata.
NO_FIELD_TAKES = [{"x": [1]}]
ANY_JSON = {"PUT /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/{key:path}"}
DEEP = "[" * 20_000 + "]" * 20_000
HUGE = 10**30


@dataclass(frozen=True)
class JsonRoute:
    method: str
    path: str
    kind: str  # "json" or "metadata" (the JSON part of a multipart body)
    oauth: bool

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _source(endpoint: Any) -> str:
    return inspect.getsource(inspect.unwrap(endpoint))


def json_routes() -> list[JsonRoute]:
    found = []
    for route in [*api_routes(), *oauth.routes]:
        if not isinstance(route, Route):
            continue
        source = _source(route.endpoint)
        if any(reader in source for reader in MULTIPART_METADATA):
            kind = "metadata"
        elif any(reader in source for reader in JSON_READERS):
            kind = "json"
        else:
            continue
        methods = sorted(set(route.methods or ()) & set(BODY_METHODS))
        if len(methods) > 1:
            # A handler that serves several methods reads a body only on its writes (PUT of a
            # namespace, a value); a DELETE that takes a body has a handler of its own (bulk).
            methods = [m for m in methods if m != "DELETE"]
        for method in methods:
            found.append(JsonRoute(method, route.path, kind, route in oauth.routes))
    return found


ROUTES = json_routes()


def test_the_route_table_has_the_json_routes_the_issue_names() -> None:
    """The discovery finds the routes of the issue: a guard against it finding nothing."""
    names = {str(r) for r in ROUTES}
    for expected in (
        "POST /provisioning/previews",
        "PUT /accounts/{account_id}/workers/scripts/{script}",
        "PUT /accounts/{account_id}/workers/scripts/{script}/secrets",
        "POST /accounts/{account_id}/workers/scripts/{script}/deployments",
        "PUT /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk",
        "PUT /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/{key:path}",
        "POST /user/tokens",
        "POST /oauth/device/code",
    ):
        assert expected in names


@dataclass
class World:
    client: TestClient
    token: str
    params: dict[str, str]


@contextmanager
def _database(kind: str, directory: Path) -> Iterator[str]:
    """SQLite, or a fresh PostgreSQL schema (whose 32-bit columns overflow where SQLite's do not)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'mayfly.db'}"
        return
    if not _pg():
        missing("PostgreSQL is not reachable at " + POSTGRES_URL)
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("json")
    with _database(request.param, directory) as database_url:
        yield from _world(directory, database_url)


def _world(directory: Path, database_url: str) -> Iterator[World]:
    platform = Platform.create(make_settings(directory, database_url=database_url))
    svc = platform.services
    user = svc.users.sign_up("fuzz@example.com", "a long enough password 1")
    account = svc.memberships.create_account(user, "fuzz")
    _, token = svc.user_tokens.create(user, account.id, "fuzz", via="api")
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as client:
        base = f"accounts/{account.id}"
        # Deployed twice (a refused route list leaves the deploys as they are).
        for _ in range(2):
            put = client.put(f"{base}/workers/scripts/w", headers=auth(token), **upload_body())
            assert put.status_code == 200, put.text
        version = put.json()["result"]["deployment_id"]
        ns = client.post(
            f"{base}/storage/kv/namespaces", headers=auth(token), json={"title": "fuzz"}
        ).json()["result"]["id"]
        tail = client.post(f"{base}/workers/scripts/w/tails", headers=auth(token), json={})
        database = client.post(f"{base}/d1/database", headers=auth(token), json={"name": "fuzz"})
        assert database.status_code == 200, database.text
        params = {
            "account_id": account.id,
            "script": "w",
            "namespace_id": ns,
            "key": "k",
            "version_id": version,
            "secret_name": "S",
            "tail_id": tail.json()["result"]["id"],
            "token_id": "0" * 32,
            "hash": "0" * 32,
            "name": "fuzz",
            "database_id": database.json()["result"]["uuid"],
        }
        yield World(client, token, params)
    platform.db.dispose()


def _url(world: World, route: JsonRoute) -> str:
    path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: world.params[m.group(1)], route.path)
    return ("http://testserver" if route.oauth else "http://testserver/client/v4") + path


def _send(world: World, route: JsonRoute, raw: str) -> Any:
    headers = auth(world.token)
    if route.kind == "metadata":
        files: list[tuple[str, Any]] = [("metadata", (None, raw, "application/json"))]
        files.append(("index.js", ("index.js", HELLO, "application/javascript+module")))
        files.append(("value", ("value", b"v", "application/octet-stream")))
        return world.client.request(route.method, _url(world, route), headers=headers, files=files)
    headers["content-type"] = "application/json"
    return world.client.request(route.method, _url(world, route), headers=headers, content=raw)


def _assert_refused(route: JsonRoute, response: Any, exactly: int | None = 400) -> None:
    if exactly is None:
        assert 400 <= response.status_code < 500, (str(route), response.text[:300])
    else:
        assert response.status_code == exactly, (str(route), response.text[:300])
    body = response.json()
    if route.oauth:
        assert body["error"], body  # RFC 6749's shape there
    else:
        assert body["success"] is False and body["errors"][0]["code"], body


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.ERROR):
        yield
    logged = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not logged, [r.getMessage() for r in logged]


@pytest.mark.usefixtures("no_tracebacks")
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_deeply_nested_json_is_400(world: World, route: JsonRoute) -> None:
    _assert_refused(route, _send(world, route, DEEP))
    _assert_refused(route, _send(world, route, json.dumps({"x": 1})[:-1] + ', "y": ' + DEEP + "}"))


@pytest.mark.usefixtures("no_tracebacks")
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_integers_beyond_64_bits_are_400(world: World, route: JsonRoute) -> None:
    every_field = {field: HUGE for field in FIELDS}
    _assert_refused(route, _send(world, route, json.dumps(every_field)))
    _assert_refused(route, _send(world, route, json.dumps([every_field])))
    _assert_refused(route, _send(world, route, "1e999"))


@pytest.mark.usefixtures("no_tracebacks")
@pytest.mark.parametrize("route", [r for r in ROUTES if str(r) not in ANY_JSON], ids=str)
def test_the_wrong_top_level_type_is_400(world: World, route: JsonRoute) -> None:
    wants_array = "bulk" in route.path or route.path.endswith(("/schedules", "/routes"))
    for wrong in ('"text"', "12", "true", "{}" if wants_array else "[]"):
        if route.oauth and wrong != "[]":
            continue  # OAuth takes form fields or a JSON object; scalars read as no fields
        _assert_refused(route, _send(world, route, wrong))


@pytest.mark.usefixtures("no_tracebacks")
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_fields_of_the_wrong_type_are_never_a_500(world: World, route: JsonRoute) -> None:
    for wrong in WRONG_VALUES:
        for body in ({field: wrong for field in FIELDS}, [{field: wrong for field in FIELDS}]):
            response = _send(world, route, json.dumps(body))
            assert response.status_code < 500, (str(route), wrong, response.text[:300])
            if response.status_code >= 400:
                _assert_refused(route, response, exactly=None)


@pytest.mark.usefixtures("no_tracebacks")
@pytest.mark.parametrize("route", [r for r in ROUTES if str(r) not in ANY_JSON], ids=str)
def test_a_field_no_route_takes_is_400(world: World, route: JsonRoute) -> None:
    body = {field: NO_FIELD_TAKES for field in FIELDS}
    _assert_refused(route, _send(world, route, json.dumps(body)))
    _assert_refused(route, _send(world, route, json.dumps([body])))
