"""Cloudflare's response envelope, and errors mapped to it (the one place that decides)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mayfly.errors import MayflyError
from mayfly.services.core import strict_json

log = logging.getLogger("mayfly.api")


def ok(
    result: Any,
    *,
    status: int = 200,
    result_info: dict[str, Any] | None = None,
    messages: list[str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "success": True,
        "errors": [],
        "messages": [{"code": 10000 + i, "message": m} for i, m in enumerate(messages or [])],
        "result": result,
    }
    if result_info is not None:
        body["result_info"] = result_info
    return JSONResponse(body, status_code=status)


def failure(
    code: int,
    message: str,
    status: int,
    headers: dict[str, str] | None = None,
    chain: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if chain:
        error["error_chain"] = chain
    return JSONResponse(
        {"success": False, "errors": [error], "messages": [], "result": None},
        status_code=status,
        headers=headers,
    )


async def mayfly_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MayflyError)
    # Rate limits (10429) and quarantines (10060) say when to come back.
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
    chain = [dict(link) for link in getattr(exc, "error_chain", ())]
    return failure(exc.code, exc.message, exc.status, headers, chain)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return failure(
        10500, "Sorry, Mayfly hit an internal error; it was logged. Retry, or report it.", 500
    )


async def json_body(request: Request) -> dict[str, Any]:
    """Parse a JSON object whatever the declared content type (wrangler sends text/plain)."""
    from mayfly.errors import ValidationError

    raw = await request.body()
    if not raw.strip():
        return {}
    data = strict_json.loads(raw)
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.")
    return data


MAX_PAGE = 1_000_000


def page_params(request: Request, default_per_page: int, maximum: int = 1000) -> tuple[int, int]:
    """`page` (from 1) and `per_page` (clamped to 1..maximum) from the query string, or 400."""
    from mayfly.errors import ValidationError

    try:
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", str(default_per_page)))
    except ValueError as exc:
        raise ValidationError("page and per_page must be whole numbers.") from exc
    if not 1 <= page <= MAX_PAGE:
        raise ValidationError(f"page must be between 1 and {MAX_PAGE}.")
    return page, min(maximum, max(1, per_page))


def paginate(
    items: list[Any], request: Request, default_per_page: int = 20
) -> tuple[list[Any], dict[str, Any]]:
    """page/per_page pagination with result_info.total_count (wrangler pages while page*per_page < total)."""
    from mayfly.errors import ValidationError

    try:
        page = max(1, int(request.query_params.get("page", "1")))
        per_page = min(
            1000, max(1, int(request.query_params.get("per_page", str(default_per_page))))
        )
    except ValueError as exc:
        raise ValidationError("page and per_page must be whole numbers.") from exc
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    return chunk, page_info(page, per_page, len(chunk), len(items))


def page_info(page: int, per_page: int, count: int, total: int) -> dict[str, Any]:
    """result_info of one page of `total` items (wrangler pages while page*per_page < total)."""
    return {
        "page": page,
        "per_page": per_page,
        "count": count,
        "total_count": total,
        "total_pages": (total + per_page - 1) // per_page,
    }
