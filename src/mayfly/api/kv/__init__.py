"""K1–K7: the Workers KV API (spec §5.8): namespaces, values (keys come from the raw path) and
bulk, one module a concern; this table routes them."""

from __future__ import annotations

from starlette.routing import Route

from mayfly.api.kv.bulk import bulk_delete, bulk_get, bulk_write
from mayfly.api.kv.namespaces import create_namespace, list_namespaces, namespace
from mayfly.api.kv.values import keys, metadata, value

N = "/accounts/{account_id}/storage/kv/namespaces"
V = N + "/{namespace_id}"
routes = [
    Route(N, create_namespace, methods=["POST"]),
    Route(N, list_namespaces, methods=["GET"]),
    Route(V, namespace, methods=["GET", "PUT", "DELETE"]),
    Route(V + "/values/{key:path}", value, methods=["GET", "PUT", "DELETE"]),
    Route(V + "/metadata/{key:path}", metadata, methods=["GET"]),
    Route(V + "/keys", keys, methods=["GET"]),
    Route(V + "/bulk", bulk_write, methods=["PUT"]),
    Route(V + "/bulk", bulk_delete, methods=["DELETE"]),
    Route(V + "/bulk/delete", bulk_delete, methods=["POST"]),
    Route(V + "/bulk/get", bulk_get, methods=["POST"]),
]
