"""What can go wrong when talking to the Retab API.

    RetabError
    ├── InvalidIdError              an id that may not go into a URL path; nothing was sent
    ├── MissingAPIKeyError          no RETAB_API_KEY; nothing was sent
    ├── ServerStoppingError         this server is shutting down; a wait ended early
    ├── APIConnectionError          the API could not be reached
    │   └── APITimeoutError         connecting or reading took longer than allowed
    │       └── CallDeadlineError   the call's overall deadline passed, over every attempt and sleep
    ├── APIResponseValidationError  a 2xx body that cannot be read as the expected shape
    └── APIStatusError              the API answered with an error status
        ├── BadRequestError         400
        ├── AuthenticationError     401
        ├── PermissionDeniedError   403
        ├── NotFoundError           404
        ├── ConflictError           409
        ├── UnprocessableEntityError 422
        ├── RateLimitError          429 (carries retry_after_s when the API sent Retry-After)
        └── InternalServerError     5xx

Every status error carries the status, the API's most useful message and the `x-request-id`, which
Retab support asks for. No error text contains the API key: it is never put into one.

`disposition()` is the one classification of these errors that every caller acts on: retries of a
request, the poll loop of a wait, and the rows of a wait on several runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from typing import cast

from ..base.text import clip

DETAIL_MAX = 300  # characters of what the API said about an error

ID_FORM = "1 to 128 characters, each a letter, a digit, '_' or '-' (e.g. exprun_2)"


class RetabError(Exception):
    """Base class of every error this package raises about the Retab API."""


class InvalidIdError(RetabError, ValueError):
    def __init__(self, kind: str, value: str) -> None:
        self.kind = kind
        shown = value if len(value) <= 40 else value[:40] + "…"
        super().__init__(f"{shown!r} is not a valid {kind}: it must be {ID_FORM}.")


class MissingAPIKeyError(RetabError):
    pass


class ServerStoppingError(RetabError):
    """This server is shutting down, so a wait ended before it could read anything."""


class APIConnectionError(RetabError):
    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    pass


class CallDeadlineError(APITimeoutError):
    """No answer within the call's deadline, which bounds every attempt and every sleep between them."""

    def __init__(self, *, url: str, deadline_s: float, elapsed_s: float, attempts: list[str]) -> None:
        self.deadline_s = deadline_s
        self.elapsed_s = elapsed_s
        self.attempts = attempts
        tried = ", ".join(attempts) if attempts else "no attempt could start"
        super().__init__(
            f"The Retab API at {url} gave no usable answer within this call's {deadline_s:g} s deadline: "
            f"{len(attempts)} attempt{'' if len(attempts) == 1 else 's'} over {elapsed_s:.1f} s ({tried}).",
            url=url,
        )


class APIResponseValidationError(RetabError):
    def __init__(self, message: str, *, status_code: int, request_id: str | None, excerpt: str) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.excerpt = excerpt
        super().__init__(f"{message} (body starts: {excerpt!r}){_request_id_suffix(request_id)}")


class APIStatusError(RetabError):
    def __init__(self, message: str, *, status_code: int, request_id: str | None) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.message = message
        super().__init__(f"HTTP {status_code}: {message}{_request_id_suffix(request_id)}")


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    def __init__(
        self, message: str, *, status_code: int, request_id: str | None, retry_after_s: float | None = None
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, status_code=status_code, request_id=request_id)


class InternalServerError(APIStatusError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _request_id_suffix(request_id: str | None) -> str:
    return f" [request id {request_id}]" if request_id else ""


def status_error(
    status_code: int,
    body: bytes,
    *,
    request_id: str | None,
    retry_after_s: float | None = None,
    redact: Callable[[str], str] = str,
) -> APIStatusError:
    """The error for an error response, with the most useful message the body offers, `redact`ed (the
    API may quote the key back: it must not reach the error's text, and so any log line)."""
    message = redact(error_message(body) or f"the API answered {status_code} with no explanation")
    if status_code == 429:
        return RateLimitError(message, status_code=status_code, request_id=request_id, retry_after_s=retry_after_s)
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    return cls(message, status_code=status_code, request_id=request_id)


def error_message(body: bytes) -> str | None:
    """Read the three FastAPI error envelopes.

    - `{"detail": "Not authenticated"}`
    - `{"detail": {"code": ..., "message": "An HTTP exception occurred.", "details": {"error": ...}}}`,
      where the useful text is in `details.error` (a string or `{"message": ...}`), not the generic message
    - `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}` for 422
    """
    try:
        data: object = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return clip(text, DETAIL_MAX) if text else None
    detail = _field(data, "detail")
    if isinstance(detail, str):
        return clip(detail, DETAIL_MAX)
    if isinstance(detail, list):
        return _validation_message(cast(list[object], detail))
    useful = _field(_field(detail, "details"), "error")
    if isinstance(useful, dict):  # details.error may itself be {"message": ...}
        useful = _field(cast(object, useful), "message")
    if isinstance(useful, str) and useful:
        return clip(useful, DETAIL_MAX)
    generic = _field(detail, "message")
    return clip(generic, DETAIL_MAX) if isinstance(generic, str) and generic else None


def _field(container: object, name: str) -> object:
    return cast(dict[str, object], container).get(name) if isinstance(container, dict) else None


def _validation_message(items: list[object]) -> str | None:
    parts: list[str] = []
    for item in items[:3]:
        raw_loc = _field(item, "loc")
        loc_parts = cast(list[object], raw_loc) if isinstance(raw_loc, list) else []
        loc = ".".join(str(p) for p in loc_parts if p not in ("query", "body"))
        msg = str(_field(item, "msg") or "invalid")
        parts.append(f"{loc}: {msg}" if loc else msg)
    if not parts:
        return None
    more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
    return clip("; ".join(parts) + more, DETAIL_MAX)


class Disposition(Enum):
    """What an error means for whoever asked: try again, the thing is not there (yet), or stop."""

    TRANSIENT = "transient"  # 408, 429, 5xx, network, an unreadable body: the same request may work later
    NOT_FOUND = "not_found"  # 404: unknown, or just created and not readable yet
    FATAL = "fatal"  # anything else: the same request will fail the same way


RETRYABLE_STATUSES = frozenset({408, 429})


def disposition(error: RetabError) -> Disposition:
    match error:
        case APIConnectionError() | APIResponseValidationError() | RateLimitError() | InternalServerError():
            return Disposition.TRANSIENT
        case NotFoundError():
            return Disposition.NOT_FOUND
        case APIStatusError() if error.status_code in RETRYABLE_STATUSES or error.status_code >= 500:
            return Disposition.TRANSIENT
        case _:
            return Disposition.FATAL


def fails_every_run(error: RetabError) -> bool:
    """Whether the error is about the key rather than one run: no run could be read with it."""
    return isinstance(error, AuthenticationError | PermissionDeniedError | MissingAPIKeyError)


def outcome_unknown(error: RetabError) -> bool:
    """After a request that changes something (a POST), whether it may have been done although it failed:
    the answer timed out, the connection broke, the API (or a proxy before it) had a server error, or it
    said yes in a body that could not be read. A refusal (4xx) is an answer: nothing was done."""
    match error:
        case APITimeoutError() | APIConnectionError() | CallDeadlineError() | APIResponseValidationError():
            return True
        case APIStatusError():
            return error.status_code >= 500
        case _:
            return False
