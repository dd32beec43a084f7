"""The Workers API (W1–W21: Workers, versions, deployments, settings, secrets, subdomains;
spec §1, §5), one module a concern; this table routes them."""

from __future__ import annotations

from starlette.routing import Route

from mayfly.api.workers.downloads import get_script
from mayfly.api.workers.scripts import (
    delete_script,
    durable_object_namespaces,
    get_service,
    get_worker,
    list_scripts,
    put_script,
    references,
    script_subdomain,
    tails_by_consumer,
)
from mayfly.api.workers.secrets import (
    list_secrets,
    patch_latest_version,
    put_secret,
    secret,
    secrets_bulk,
)
from mayfly.api.workers.settings import (
    account_settings,
    get_settings,
    patch_script_settings,
    patch_settings,
)
from mayfly.api.workers.subdomains import (
    check_subdomain,
    get_account_subdomain,
    put_account_subdomain,
)
from mayfly.api.workers.versions import (
    get_deployment,
    get_version,
    list_deployments,
    list_versions,
    post_deployment,
    post_version,
)

A = "/accounts/{account_id}"
S = A + "/workers/scripts/{script}"
routes = [
    Route(A + "/workers/services/{script}", get_service, methods=["GET"]),
    Route(A + "/workers/services/{script}", delete_script, methods=["DELETE"]),
    Route(A + "/workers/scripts", list_scripts, methods=["GET"]),
    Route(S, get_script, methods=["GET"]),
    Route(S, put_script, methods=["PUT"]),
    Route(S + "/content/v2", get_script, methods=["GET"]),
    Route(S + "/settings", patch_settings, methods=["PATCH"]),
    Route(S + "/secrets-bulk", secrets_bulk, methods=["PATCH"]),
    Route(A + "/workers/workers/{script}/versions/latest", patch_latest_version, methods=["PATCH"]),
    Route(A + "/workers/account-settings", account_settings, methods=["GET", "PUT", "PATCH"]),
    Route(S, delete_script, methods=["DELETE"]),
    Route(S + "/versions", post_version, methods=["POST"]),
    Route(S + "/versions", list_versions, methods=["GET"]),
    Route(S + "/versions/{version_id}", get_version, methods=["GET"]),
    Route(S + "/deployments", list_deployments, methods=["GET"]),
    Route(S + "/deployments", post_deployment, methods=["POST"]),
    Route(S + "/deployments/{deployment_id}", get_deployment, methods=["GET"]),
    Route(S + "/settings", get_settings, methods=["GET"]),
    Route(S + "/script-settings", patch_script_settings, methods=["PATCH"]),
    Route(S + "/script-settings", get_settings, methods=["GET"]),
    Route(S + "/secrets", list_secrets, methods=["GET"]),
    Route(S + "/secrets", put_secret, methods=["PUT"]),
    Route(S + "/secrets/{secret_name}", secret, methods=["GET", "DELETE"]),
    Route(S + "/subdomain", script_subdomain, methods=["GET", "POST", "DELETE"]),
    Route(S + "/references", references, methods=["GET"]),
    Route(A + "/workers/subdomain", get_account_subdomain, methods=["GET"]),
    Route(A + "/workers/subdomain", put_account_subdomain, methods=["PUT"]),
    Route(A + "/workers/subdomains/{name}", check_subdomain, methods=["GET"]),
    Route(A + "/workers/workers/{script}", get_worker, methods=["GET"]),
    Route(A + "/workers/tails/by-consumer/{script}", tails_by_consumer, methods=["GET"]),
    Route(A + "/workers/durable_objects/namespaces", durable_object_namespaces, methods=["GET"]),
]
