"""The internal API behind D1 bindings (runtime/d1.js), on the internal listener only.

The database id in the path is the one the platform put in the binding's props. A body is
`{batch: [{sql, params}], raw}` (query) or `{sql}` (exec); the answer is `{result}`, or `{error}`
with D1's message ("D1_ERROR: …") and a 4xx.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mayfly.api.auth import services
from mayfly.api.bodies import read_capped
from mayfly.errors import MayflyError


async def _body(request: Request) -> Any:
    limit = services(request).ctx.settings.max_json_body_bytes
    return json.loads(
        await read_capped(request, limit, f"A D1 request is at most {limit} bytes of JSON.")
    )


async def query(request: Request) -> Response:
    d1 = services(request).d1
    database_id = request.path_params["database_id"]
    if request.path_params["action"] not in ("query", "exec"):
        return JSONResponse({"error": "D1_ERROR: no such action"}, status_code=404)
    try:
        body = await _body(request)
        if request.path_params["action"] == "exec":
            sql = body.get("sql") if isinstance(body, dict) else None
            result: Any = await d1.runner.call(d1.exec_bound, database_id, sql)
        else:
            raw = bool(body.get("raw")) if isinstance(body, dict) else False
            result = await d1.runner.call(d1.query_bound, database_id, body, raw)
    except MayflyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except (ValueError, RecursionError) as exc:
        return JSONResponse({"error": f"D1_ERROR: malformed request: {exc}"}, status_code=400)
    return JSONResponse({"result": result})


routes = [
    Route("/internal/v1/d1/{database_id}/{action:str}", query, methods=["POST"]),
]
