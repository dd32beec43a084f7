"""Cron triggers: `GET`/`PUT /accounts/{id}/workers/scripts/{name}/schedules` in Cloudflare's
shapes (what `wrangler deploy` with `[triggers] crons` and `wrangler triggers deploy` send)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mayfly.api.auth import account_access, in_account, services
from mayfly.api.envelope import ok
from mayfly.api.openapi import STRING, array, obj, operation
from mayfly.services.core import strict_json

TAG = "Workers"
SCHEDULE = obj({"cron": STRING, "created_on": STRING, "modified_on": STRING}, "cron", "created_on")
SCHEDULES = obj({"schedules": array(SCHEDULE)}, "schedules")


@operation(
    "GET",
    "A Worker's cron triggers",
    operation_id="worker-cron-trigger-get-cron-triggers",
    tag=TAG,
    result=SCHEDULES,
)
@operation(
    "PUT",
    "Replace a Worker's cron triggers (an empty list removes them); 10021 for an expression "
    "Mayfly cannot run, before anything is stored",
    operation_id="worker-cron-trigger-update-cron-triggers",
    tag=TAG,
    result=SCHEDULES,
    body={"application/json": array(obj({"cron": STRING}, "cron"))},
    body_required=True,
    examples={"application/json": [{"cron": "*/30 * * * *"}]},
)
async def schedules(request: Request) -> Response:
    name = str(request.path_params["script"])
    service = services(request).schedules
    if request.method == "PUT":
        who, account = await account_access(request)
        raw = await request.body()
        body = strict_json.loads(raw, "The schedule list") if raw.strip() else []
        return ok({"schedules": await service.put(who, account, name, body)})
    return ok(
        {"schedules": await in_account(request, lambda _, account: service.get(account, name))}
    )


routes = [
    Route(
        "/accounts/{account_id}/workers/scripts/{script}/schedules",
        schedules,
        methods=["GET", "PUT"],
    ),
]
