"""/client/v4/openapi.json: generated from the route table, complete, valid, served to anyone."""

from __future__ import annotations

import re

import schemathesis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from mayfly.api.openapi import operation, undocumented
from mayfly.api.routes import api_routes, openapi_document


def test_every_route_declares_its_operation() -> None:
    missing = undocumented(api_routes())
    assert not missing, (
        "These routes have no OpenAPI operation: declare one with @operation(...) from "
        f"mayfly.api.openapi above each handler (one per method): {missing}"
    )


def test_a_route_without_a_declaration_is_reported() -> None:
    async def bare(request: Request) -> Response:
        return Response()

    @operation("GET", "Only GET is declared")
    async def half(request: Request) -> Response:
        return Response()

    routes = [
        Route("/bare/{id}", bare, methods=["GET"]),
        Route("/half", half, methods=["GET", "POST"]),
    ]
    assert undocumented(routes) == ["GET /bare/{id}", "POST /half"]


def test_the_document_has_every_route_and_method_once() -> None:
    document = openapi_document()
    served = {
        (re.sub(r"{(\w+):\w+}", r"{\1}", route.path), method.lower())
        for route in api_routes()
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == served
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_the_document_is_valid_openapi_that_schemathesis_loads() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.")
    schema = schemathesis.openapi.from_dict(document)
    operations = list(schema.get_all_operations())
    assert operations and all(result.ok() for result in operations)
    assert len(operations) == sum(len(item) for item in document["paths"].values())


def test_path_parameters_are_declared_and_only_unauthenticated_routes_waive_the_token() -> None:
    document = openapi_document()
    assert document["security"] == [{"api_token": []}]
    open_routes = set()
    for path, item in document["paths"].items():
        for method, op in item.items():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert set(op["responses"]) >= {"4XX"}
            if op.get("security") == []:
                open_routes.add(f"{method.upper()} {path}")
    assert open_routes == {
        "GET /openapi.json",
        "POST /provisioning/previews/challenge",
        "POST /provisioning/previews",
        # D1's import upload and export download URLs: signed for one database and one hour
        # (wrangler PUTs and GETs them without its token, as it does Cloudflare's R2 URLs).
        "PUT /d1/imports/{token}",
        "GET /d1/exports/{token}",
    }


def test_it_is_served_without_a_token_as_generated(client: TestClient) -> None:
    response = client.get("openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == openapi_document()
    envelope = response.json()["paths"]["/accounts/{account_id}/storage/kv/namespaces"]["post"]
    assert envelope["operationId"] == "workers-kv-namespace-create-a-namespace"
