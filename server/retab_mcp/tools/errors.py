"""Errors at the tool boundary: a client error raised as the ToolError a model reads (in the words of
views/messages.py), and arguments that do not fit a tool's schema in this server's words."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from ..api.errors import RetabError, UnprocessableEntityError
from ..views.messages import explain

if TYPE_CHECKING:
    from ..kinds import RunKind


@contextmanager
def tool_errors(run_id: str, subject: str | None = None, *, kind: RunKind | None = None) -> Generator[None]:
    """Raise any RetabError inside as a ToolError with an actionable message; `kind` is the kind of run
    `run_id` was read as, when a tool takes runs of any kind."""
    try:
        yield
    except RetabError as error:
        raise ToolError(explain(error, run_id, subject, kind=kind)) from None


@contextmanager
def cursor_errors(cursor: str | None) -> Generator[None]:
    """A cursor the API refuses (422 on its `after`) said in the tool's own word: `cursor`."""
    try:
        yield
    except UnprocessableEntityError as error:
        if cursor is None or "after" not in error.message:
            raise
        raise ToolError(
            f"cursor {cursor[:60]!r} is stale or not from this list: pass the next_cursor of the page before, or "
            "omit cursor for the first page."
        ) from None


ARGUMENT_ERRORS_SHOWN = 3


def invalid_arguments(tool: str, error: ValidationError, input_schema: Mapping[str, Any] | None) -> str:
    """The message for arguments that do not fit a tool's input schema: which argument, what is wrong,
    what it takes. The rejected values are not repeated: they are the caller's, and may be large."""
    properties = cast(Mapping[str, Any], (input_schema or {}).get("properties") or {})
    problems: list[str] = []
    for item in error.errors()[:ARGUMENT_ERRORS_SHOWN]:
        name = ".".join(str(part) for part in item["loc"]) or "arguments"
        wrong = "required" if item["type"] == "missing" else item["msg"][:1].lower() + item["msg"][1:]
        described = cast(Mapping[str, Any], properties.get(str(item["loc"][0]), {}) if item["loc"] else {})
        takes = f" (it takes: {str(described['description']).rstrip('.')})" if described.get("description") else ""
        problems.append(f"{name}: {wrong}{takes}")
    more = (
        f"; and {error.error_count() - ARGUMENT_ERRORS_SHOWN} more"
        if error.error_count() > ARGUMENT_ERRORS_SHOWN
        else ""
    )
    return f"Invalid arguments for {tool}: " + "; ".join(problems) + more + ". Call again with them corrected."
