"""The words for each error: what happened and the next step, for a model or a person.

The tools (tools/errors.py) and the command line share them. None contains the API key; text the API
supplied is labelled as Retab's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..api.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    CallDeadlineError,
    InternalServerError,
    InvalidIdError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetabError,
    ServerStoppingError,
)
from ..watch.starts import StartRefusedError

if TYPE_CHECKING:
    from ..kinds import RunKind


def explain(error: RetabError, run_id: str, subject: str | None = None, *, kind: RunKind | None = None) -> str:
    """The message for `error`. `subject` names what was asked for when it is not simply the run; `kind` is
    the kind of run it was read as, by a tool that takes any."""
    request = f" (request id {error.request_id})" if isinstance(error, APIStatusError) and error.request_id else ""
    match error:
        case MissingAPIKeyError() | ServerStoppingError():
            return str(error)
        case StartRefusedError():
            return f"Nothing was started: {error}. Call again in a moment."
        case InvalidIdError():
            return f"Invalid {error.kind}: {error} Check the id and call again."
        case NotFoundError() if subject is not None:
            return f"Not found{request}: {subject}. Retab says: {error.message} Check the ids and call again."
        case NotFoundError() if kind is not None and kind.name != "experiment":
            return (
                f"No {kind.noun} {run_id!r} was found{request}. Check the id: copy it exactly from the Retab "
                "dashboard or from the call that created the run; if it is another kind of run, pass kind."
            )
        case NotFoundError():
            other = (
                " If it is a workflow or eval run, pass kind='workflow' or kind='eval'."
                if kind is not None and not run_id.startswith(kind.prefix)
                else ""
            )
            return (
                f"No experiment run {run_id!r} was found{request}. Check the id: copy it exactly from the Retab "
                f"dashboard or from the call that created the run.{other}"
            )
        case AuthenticationError():
            return (
                f"Retab rejected the API key (HTTP 401){request}. Put a valid key in RETAB_API_KEY in the `env` "
                "block of this server's MCP config, then restart the server."
            )
        case PermissionDeniedError():
            return (
                f"The key in RETAB_API_KEY may not read this run (HTTP 403){request}. Use a key of the "
                "organisation that owns the run."
            )
        case RateLimitError():
            after = f"{error.retry_after_s:.0f} s" if error.retry_after_s is not None else "about 30 s"
            return f"Retab is rate limiting requests (HTTP 429){request}. Retry in {after}."
        case InternalServerError():
            return (
                f"Retab had a server error (HTTP {error.status_code}){request}, still failing after retries. "
                "Retry in a minute."
            )
        case APIStatusError():
            return f"Retab refused the request (HTTP {error.status_code}){request}: {error.message}"
        case CallDeadlineError():
            return (
                f"{error} Nothing is wrong with the request: call again in about a minute. If it keeps "
                "happening, check RETAB_API_BASE_URL and network access; RETAB_MCP_CALL_DEADLINE_S sets the "
                "deadline."
            )
        case APITimeoutError():
            return (
                f"The Retab API at {error.url} did not answer in time. Retry shortly; if it persists, check "
                "RETAB_API_BASE_URL and network access."
            )
        case APIConnectionError():
            return (
                f"Could not reach the Retab API at {error.url}. Check network access and RETAB_API_BASE_URL in "
                "the server's env, then retry."
            )
        case APIResponseValidationError():
            return f"Retab sent an answer this server could not read: {error} Retry; report it if it persists."
        case _:
            return f"Retab request failed: {error}"
