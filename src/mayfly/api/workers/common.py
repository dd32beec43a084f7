"""What the Workers routes share: their schemas, the script in the path, the quarantine check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from mayfly.api.auth import in_account, services
from mayfly.api.openapi import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    STRING,
    TIMESTAMP,
    array,
    component,
    obj,
)
from mayfly.model import Account, Principal
from mayfly.services.workers.deploys import Uploaded
from mayfly.services.workers.uploads import UploadPlan

T = TypeVar("T")
TAG = "Workers"
# `?bindings_inherit=strict`: a binding to inherit must exist in the previous version.
UPLOAD_QUERY = {"bindings_inherit": {"type": "string", "enum": ["strict"]}}
UPLOAD = {
    "multipart/form-data": obj(
        {
            "metadata": obj(
                {
                    "main_module": STRING,
                    "body_part": STRING,
                    "compatibility_date": STRING,
                    "compatibility_flags": array(STRING),
                    "bindings": array(ANY_OBJECT),
                    "keep_bindings": array(STRING),
                    "annotations": obj({"workers/message": STRING, "workers/tag": STRING}),
                    "assets": ANY_OBJECT,
                    "usage_model": STRING,
                }
            ),
        },
        "metadata",
    )
    # and one part per module, named by its file name
    | {"additionalProperties": {"type": "string", "format": "binary"}}
}
UPLOAD_EXAMPLE = {
    "multipart/form-data": {
        "metadata": {"main_module": "index.js", "compatibility_date": "2025-01-01"},
        "index.js": 'export default { fetch() { return new Response("hello"); } };',
    }
}
# What an upload takes, the same for W9 (deployed) and W10 (a version only).
UPLOAD_OPERATION: dict[str, Any] = {
    "tag": TAG,
    "query": UPLOAD_QUERY,
    "body": UPLOAD,
    "examples": UPLOAD_EXAMPLE,
    "body_required": True,
}
SECRET_NAME = {"type": "string", "pattern": "^[A-Za-z_$][A-Za-z0-9_$]{0,63}$"}
VERSION = component(
    "worker-version",
    obj(
        {
            "id": STRING,
            "number": INTEGER,
            "metadata": obj(
                {
                    "created_on": TIMESTAMP,
                    "modified_on": TIMESTAMP,
                    "source": STRING,
                    "author_email": STRING,
                }
            ),
            "annotations": ANY_OBJECT,
            "resources": obj(
                {
                    "script": obj({"etag": STRING, "handlers": array(STRING)}),
                    "script_runtime": obj(
                        {"compatibility_date": STRING, "compatibility_flags": array(STRING)}
                    ),
                    "bindings": array(ANY_OBJECT),
                }
            ),
        },
        "id",
        "resources",
    ),
)
DEPLOYMENT = component(
    "worker-deployment",
    obj(
        {
            "id": STRING,
            "created_on": TIMESTAMP,
            "source": STRING,
            "strategy": STRING,
            "author_email": STRING,
            "annotations": ANY_OBJECT,
            "versions": array(obj({"version_id": STRING, "percentage": {"type": "number"}})),
        },
        "id",
        "versions",
    ),
)
SETTINGS = component(
    "worker-settings",
    obj(
        {
            "bindings": array(ANY_OBJECT),
            "compatibility_date": STRING,
            "compatibility_flags": array(STRING),
            "usage_model": STRING,
            "logpush": BOOLEAN,
            "observability": ANY_OBJECT,
            "tags": array(STRING),
            "tail_consumers": array(ANY_OBJECT),
        }
    ),
)
SECRET = obj({"name": STRING, "type": {"type": "string", "enum": ["secret_text"]}}, "name", "type")
SCRIPT_SUBDOMAIN = obj({"enabled": BOOLEAN, "previews_enabled": BOOLEAN}, "enabled")
SUBDOMAIN = obj({"subdomain": STRING}, "subdomain")
TIMES = {"created_on": TIMESTAMP, "modified_on": TIMESTAMP}


def script_name(request: Request) -> str:
    return str(request.path_params["script"])


def strict_inherit(request: Request) -> bool:
    """`?bindings_inherit=strict`: a binding to inherit must exist in the previous version."""
    return request.query_params.get("bindings_inherit") == "strict"


async def in_worker(request: Request, work: Callable[[Principal, Account], T]) -> T:
    """in_account for a Worker that is read, changed or deployed: between the account's checks
    and `work(who, account)`, in the same worker thread, 10060 while the Worker is quarantined."""
    quarantine, script = services(request).quarantine, script_name(request)

    def run(who: Principal, account: Account) -> T:
        quarantine.check(account, script)
        return work(who, account)

    return await in_account(request, run)


async def worker_access(request: Request) -> tuple[Principal, Account]:
    """The caller and the account (as account_access) once the Worker is not quarantined, for
    a handler that reads its body next."""
    return await in_worker(request, lambda who, account: (who, account))


def worker_url(request: Request, account: Account, script: str) -> str:
    return services(request).ctx.worker_url(script, account.name)


async def store_upload(
    request: Request, who: Principal, account: Account, plan: UploadPlan, *, deploy: bool
) -> Uploaded:
    """W9 and W10: an upload (read by the handler) stored as a version, deployed or not."""
    return await services(request).scripts.upload(
        who,
        account,
        script_name(request),
        plan,
        deploy=deploy,
        strict_inherit=strict_inherit(request),
    )
