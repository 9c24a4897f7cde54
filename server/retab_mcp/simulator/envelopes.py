"""What every endpoint of the simulated API shares: Retab's error envelopes, query checks, keyset paging.

Retab's server is FastAPI, so its errors come in three forms (NOTES.md): a plain `{"detail": "..."}`, the
`HTTP_EXCEPTION` envelope whose useful text is in `details.error`, and the 422 list of `{loc, msg, type}`.
Query checks answer the 422 that FastAPI's own validation would.
"""

from __future__ import annotations

import json
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def http_exception(status: int, error: str) -> JSONResponse:
    """The envelope Retab wraps its HTTPExceptions in: a generic message, the useful text in details.error."""
    return JSONResponse(
        {
            "detail": {
                "code": "HTTP_EXCEPTION",
                "message": "An HTTP exception occurred.",
                "details": {"error": error},
            }
        },
        status_code=status,
    )


def plain_detail(status: int, detail: str) -> JSONResponse:
    """`{"detail": "..."}`, the form of Retab's 404s for workflow and eval runs (NOTES.md)."""
    return JSONResponse({"detail": detail}, status_code=status)


def experiment_run_not_found(run_id: str) -> JSONResponse:
    return http_exception(404, f"Experiment run not found: {run_id}")


def validation_error(loc: list[str], msg: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": kind}]}, status_code=422)


def require(q: Any, name: str) -> JSONResponse | None:
    return None if q.get(name) else validation_error(["query", name], "Field required", "missing")


def check_enum(q: Any, name: str, allowed: tuple[str, ...]) -> JSONResponse | None:
    value = q.get(name)
    if value is None or value in allowed:
        return None
    return validation_error(["query", name], f"Input should be {', '.join(repr(a) for a in allowed)}", "enum")


def check_limit(q: Any, maximum: int) -> JSONResponse | None:
    raw = q.get("limit")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return validation_error(["query", "limit"], "Input should be a valid integer", "int_parsing")
    if not 1 <= value <= maximum:
        return validation_error(["query", "limit"], f"Input should be between 1 and {maximum}", "less_than_equal")
    return None


def check_int(q: Any, name: str) -> JSONResponse | None:
    raw = q.get(name)
    if raw is None:
        return None
    try:
        int(raw)
    except ValueError:
        return validation_error(["query", name], "Input should be a valid integer", "int_parsing")
    return None


def page(items: list[dict[str, Any]], q: Any, *, default_limit: int) -> Response:
    """Keyset pagination: `after` is the id of the last item of the previous page; `before`, of the first
    item of the next page (the page before it is answered)."""
    return page_by(items, q, default_limit=default_limit, key="id")


def page_by(items: list[dict[str, Any]], q: Any, *, default_limit: int, key: str) -> Response:
    """`page`, for lists whose cursor is another field than `id` (steps page by `step_id`)."""
    limit = int(q.get("limit") or default_limit)
    ids = [item[key] for item in items]
    after, before = q.get("after"), q.get("before")
    for name, cursor in (("after", after), ("before", before)):
        if cursor and cursor not in ids:
            return validation_error(["query", name], "Cursor is stale or does not belong to this list", "value_error")
    if after:
        start = ids.index(after) + 1
    elif before:
        start = max(0, ids.index(before) - limit)
    else:
        start = 0
    end = min(start + limit, ids.index(before) if before and not after else len(items))
    chosen = items[start:end]
    return JSONResponse(
        {
            "data": chosen,
            "list_metadata": {
                "before": chosen[0][key] if chosen and start > 0 else None,
                "after": chosen[-1][key] if chosen and end < len(items) else None,
            },
        }
    )


async def json_object(request: Request) -> dict[str, object]:
    """The request's JSON body if it is an object, else an empty one (the checks that follow say what is
    missing)."""
    try:
        payload: Any = json.loads(await request.body())
    except ValueError:
        payload = None
    return cast(dict[str, object], payload) if isinstance(payload, dict) else {}


def bearer_key(request: Request) -> str:
    """The API key the request carries (the guard has already refused requests without one)."""
    return request.headers.get("authorization", "")[7:].strip()
