"""Schemathesis over /client/v4/openapi.json: no input, from anyone, gets a 500.

The document is the one the app serves (test_openapi.py checks it is the generated one). Each
generated request is sent four times: with a permanent account's token, a temporary account's, a
user's token, and with no token at all. In valid requests the path parameters are markers
(`OWN-account`, `OWN-script`, …) that become the caller's own account, Worker, namespace, version,
secret or key, so that requests reach past the access checks; invalid ones carry whatever was
generated (someone else's account, a malformed name, …). Each answer must be no 5xx, an error in
Cloudflare's envelope, a declared status, and a success body that matches the document.

Bounded for CI (about two minutes on two idle cores: no-token requests to routes that need one
are sent for a quarter of the cases); MAYFLY_FUZZ_EXAMPLES and MAYFLY_FUZZ_SEED
widen or vary a local run. What was sent and seen is printed at the end of the run (conftest.py).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from mayfly.api.routes import openapi_document
from mayfly.app import Platform
from tests.clock import ManualClock
from tests.conftest import POSTGRES_URL, auth, make_settings, provision, upload_body
from tests.fuzz.conftest import FUZZ_STATS

EXAMPLES = int(os.environ.get("MAYFLY_FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("MAYFLY_FUZZ_SEED", "20261207"))
SCRIPT = "fuzz-target"
BUCKET = "fuzz-bucket"
SENT = itertools.count()
BASE_URL = "http://testserver/client/v4"
MARKERS = {
    "account_id": "OWN-account",
    "script": "OWN-script",
    "namespace_id": "OWN-namespace",
    "version_id": "OWN-version",
    "secret_name": "OWN-secret",
    "key": "OWN-key",
    "database_id": "OWN-database",
    "bucket_name": "OWN-bucket",
}


@dataclass
class Caller:
    name: str
    token: str | None
    resources: dict[str, str]  # marker -> the caller's own id or name


@dataclass
class Target:
    platform: Platform
    app: Any
    callers: list[Caller]


def _restore(http: ASGIClient, caller: Caller) -> None:
    """The caller's deployed Worker (with a secret) and namespace (with a key), re-created when
    an earlier operation deleted them, so that every operation starts with something to reach."""
    headers = auth(caller.token or "")
    own = caller.resources
    base = f"{BASE_URL}/accounts/{own['OWN-account']}"
    worker = f"{base}/workers/scripts/{SCRIPT}"
    if http.get(f"{base}/workers/services/{SCRIPT}", headers=headers).status_code != 200:
        uploaded = http.put(worker, headers=headers, **upload_body())
        assert uploaded.status_code == 200, uploaded.text
        secret = {"name": "TOKEN", "text": "s3cret", "type": "secret_text"}
        assert http.put(f"{worker}/secrets", headers=headers, json=secret).status_code == 200
        versions = http.get(f"{worker}/versions", headers=headers).json()
        own["OWN-version"] = versions["result"]["items"][0]["id"]
    namespaces = f"{base}/storage/kv/namespaces"
    namespace = own.get("OWN-namespace", "none")
    if http.get(f"{namespaces}/{namespace}", headers=headers).status_code != 200:
        title = f"fuzz-{len(FUZZ_STATS.operations)}"
        created = http.post(namespaces, headers=headers, json={"title": title}).json()
        own["OWN-namespace"] = created["result"]["id"]
        key = f"{namespaces}/{own['OWN-namespace']}/values/k"
        assert http.put(key, headers=headers, data=b"v").status_code == 200
    databases = f"{base}/d1/database"
    if (
        http.get(f"{databases}/{own.get('OWN-database', 'none')}", headers=headers).status_code
        != 200
    ):
        name = f"fuzz-{len(FUZZ_STATS.operations)}"
        created = http.post(databases, headers=headers, json={"name": name}).json()
        own["OWN-database"] = created["result"]["uuid"]
    bucket = f"{base}/r2/buckets/{BUCKET}"
    if http.get(bucket, headers=headers).status_code != 200:
        assert (
            http.post(f"{base}/r2/buckets", headers=headers, json={"name": BUCKET}).status_code
            == 200
        )
        assert http.put(f"{bucket}/objects/k", headers=headers, data=b"v").status_code == 200


@contextmanager
def _database(tmp: Path) -> Iterator[str]:
    """SQLite in tmp; MAYFLY_FUZZ_DATABASE=postgres: a fresh schema on the test PostgreSQL."""
    if os.environ.get("MAYFLY_FUZZ_DATABASE") != "postgres":
        yield f"sqlite:///{tmp / 'mayfly.db'}"
        return
    schema = "fuzz_" + secrets.token_hex(6)
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


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with _database(tmp) as url:
        yield from _target(tmp, url)


def _target(tmp: Path, database_url: str) -> Iterator[Target]:
    platform = Platform.create(make_settings(tmp, database_url=database_url), clock=ManualClock())
    app = platform.public_app()
    svc = platform.services
    permanent, permanent_token = svc.accounts.create_permanent("fuzzing")
    with TestClient(app, base_url="http://testserver/client/v4/") as client:
        temporary = provision(client)["account"]
    user = svc.users.sign_up("fuzz@example.com", "correct horse battery staple")
    owned = svc.memberships.create_account(user, "fuzzed-by-a-user")
    _, user_token = svc.user_tokens.create(user, owned.id, "fuzz")
    callers = [
        Caller("permanent", permanent_token, {"OWN-account": permanent.id}),
        Caller("temporary", temporary["apiToken"], {"OWN-account": temporary["id"]}),
        Caller("user", user_token, {"OWN-account": owned.id}),
    ]
    # No token: the permanent account's names, so that only the missing token stands in the way.
    callers.append(Caller("anonymous", None, callers[0].resources))
    for caller in callers:
        caller.resources.update(
            {"OWN-script": SCRIPT, "OWN-secret": "TOKEN", "OWN-key": "k", "OWN-bucket": BUCKET}
        )
    yield Target(platform, app, callers)
    platform.db.dispose()


def _mark_properties(schema: Any) -> None:
    """Body fields named like a marked path parameter (a deployment's `version_id`) too."""
    if isinstance(schema, dict):
        for name, value in schema.get("properties", {}).items():
            if name in MARKERS and value.get("type") == "string":
                schema["properties"][name] = {"type": "string", "enum": [MARKERS[name]]}
        for value in schema.values():
            _mark_properties(value)
    elif isinstance(schema, list):
        for value in schema:
            _mark_properties(value)


def _with_markers(document: dict[str, Any]) -> dict[str, Any]:
    """Valid path parameters (and body fields of the same name) are markers, replaced by the
    caller's own resource when sent."""
    patched = copy.deepcopy(document)
    for item in patched["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                marker = MARKERS.get(parameter["name"])
                if parameter["in"] == "path" and marker:
                    parameter["schema"] = {"type": "string", "enum": [marker]}
            _mark_properties(operation.get("requestBody"))
    return patched


def _own(value: Any, resources: dict[str, str]) -> Any:
    if isinstance(value, str):
        return resources.get(value, value)
    if isinstance(value, list):
        return [_own(v, resources) for v in value]
    if isinstance(value, dict):
        return {k: _own(v, resources) for k, v in value.items()}
    return value


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "no-shrink": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                # Methods a route does not serve all meet the same 405 handler: one will do.
                "coverage": {"enabled": True, "unexpected-methods": ["TRACE"]},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )


@pytest.fixture(scope="module")
def session(target: Target) -> Iterator[ASGIClient]:
    with ASGIClient(target.app) as client:
        yield client


@pytest.fixture(autouse=True)
def resources(target: Target, session: ASGIClient) -> None:
    for caller in target.callers:
        if caller.token is not None:
            _restore(session, caller)


def check_envelope(ctx: Any, response: Any, case: Case) -> bool | None:
    """Every error is in Cloudflare's envelope, with a numeric code and a message."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"An error outside the envelope: {response.content[:200]!r}") from None
    assert body["success"] is False, body
    assert body["errors"] and all(
        isinstance(e["code"], int) and isinstance(e["message"], str) for e in body["errors"]
    ), body
    return None


# Built at collection (pure: no database); test_openapi.py checks that the app serves exactly this.
schema = schemathesis.openapi.from_dict(_with_markers(openapi_document()), config=_config())


@schema.parametrize()
def test_no_request_gets_a_server_error(case: Case, target: Target, session: ASGIClient) -> None:
    generated = dict(case.path_parameters or {})
    headers = dict(case.headers or {})
    body = case.body
    # Without a token a route that needs one stops at the same check every time: a quarter of
    # the cases is enough there (the time goes to the callers that get further).
    needs_token = case.operation.definition.raw.get("security") != []
    sparse = needs_token and next(SENT) % 4 != 0
    for caller in target.callers:
        if caller.token is None and sparse:
            continue
        case.path_parameters = _own(generated, caller.resources)
        if isinstance(body, (dict, list)):
            case.body = _own(body, caller.resources)
        case.headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if caller.token is not None:
            case.headers["Authorization"] = f"Bearer {caller.token}"
        response = case.call(base_url=BASE_URL, session=session)
        FUZZ_STATS.record(case.operation.label, caller.name, response.status_code)
        case.validate_response(
            response,
            checks=[
                not_a_server_error,
                check_envelope,
                response_schema_conformance,
                status_code_conformance,
            ],
        )
