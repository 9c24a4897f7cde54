"""Pages of runs and of per-document results: one compact row each, and a cursor for the next page.

The API filters runs by status itself, but not results; a filtered page of results is assembled by
reads/results.py from the API's pages in order. Its cursor therefore says where to resume *within* an API
page: `<api cursor>.<rows already returned from that page>`, opaque to the model, checked when it comes back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..api import statuses
from ..api.errors import InvalidIdError
from ..tools import names
from .run import duration_s, run_state
from .text import clip, duration_text, iso_seconds

if TYPE_CHECKING:
    from ..api.models import Page, Result, Run

RESULT_ERROR_MAX = 120
FILENAME_MAX = 60
PAGE_MAX_BYTES = 8_000  # rows beyond this are left for the next page, whatever `limit` says
PAGE_OVERHEAD_BYTES = 800  # heading, hint and cursor, in both channels
RESULT_PAGE_SCAN = 200  # API rows read per request while filtering results
RESULT_SCAN_PAGES = 10  # a filtered page stops after this many API pages and returns what it has
_RESULT_CURSOR = re.compile(r"^(?P<after>[A-Za-z0-9_-]{0,128})\.(?P<skip>\d{1,6})$")


class RunRow(BaseModel):
    run_id: str
    status: str
    score: float | None = Field(
        default=None, description="Consensus agreement of a completed run, 0 to 1; null otherwise."
    )
    completed_documents: int | None
    total_documents: int | None
    error_count: int | None
    created_at: str | None = None


class RunList(BaseModel):
    """A page of experiment runs, newest first."""

    runs: list[RunRow]
    next_cursor: str | None = Field(
        default=None, description="Pass as cursor to get the next page; null on the last page."
    )
    hint: str


class ResultRow(BaseModel):
    document_id: str | None = None
    filename: str | None = None
    status: str
    error: str | None = Field(default=None, description="The document's error message, cut short.")
    duration_s: float | None = None


class ResultList(BaseModel):
    """One row per document of a run, in document order."""

    run_id: str
    status_filter: str | None = None
    results: list[ResultRow]
    next_cursor: str | None = Field(
        default=None, description="Pass as cursor to get the next page; null on the last page."
    )
    hint: str


# Runs


def run_row(run: Run, now: datetime) -> RunRow:
    state = run_state(run, now)
    return RunRow(
        **state.model_dump(include=set(RunRow.model_fields)),
        created_at=iso_seconds(run.timing.created_at),
    )


def run_list(page: Page[Run], now: datetime) -> RunList:
    rows = [run_row(run, now) for run in page.data]
    if not rows:
        hint = "No runs match. Loosen the filters (status, experiment_id, workflow_id)."
    elif page.next_cursor:
        hint = f"More runs: call again with cursor. Details of one: {names.GET_RUN} or {names.TRIAGE}."
    else:
        hint = f"Details of one: {names.GET_RUN}; why it scored so: {names.TRIAGE}."
    return RunList(runs=rows, next_cursor=page.next_cursor, hint=hint)


def render_run_list(runs: RunList) -> str:
    lines = [f"{len(runs.runs)} run{'' if len(runs.runs) == 1 else 's'}, newest first:"]
    for row in runs.runs:
        score = f"score {row.score:.2f}" if row.score is not None else None
        errors = f"{row.error_count} err" if row.error_count else None
        created = row.created_at.replace("T", " ").removesuffix("Z") if row.created_at else None
        documents = f"{row.completed_documents}/{row.total_documents} docs"
        bits = [row.run_id, row.status, score, documents, errors, created]
        lines.append("- " + " · ".join(b for b in bits if b))
    if runs.next_cursor:
        lines.append(f"More: cursor={runs.next_cursor}")
    lines.append(f"Next: {runs.hint}")
    return "\n".join(lines)


# Results


def result_row(result: Result) -> ResultRow:
    message = result.lifecycle.error_message
    return ResultRow(
        document_id=result.document_id,
        filename=clip(result.filename, FILENAME_MAX) if result.filename else None,
        status=result.status,
        error=clip(message, RESULT_ERROR_MAX) if result.status == statuses.ERROR and message else None,
        duration_s=duration_s(result.timing),
    )


def parse_result_cursor(cursor: str | None) -> tuple[str | None, int]:
    """(API cursor, rows to skip) from a cursor this module made; raises InvalidIdError otherwise."""
    if cursor is None or cursor == "":
        return None, 0
    match = _RESULT_CURSOR.fullmatch(cursor)
    if match is None:
        raise InvalidIdError("cursor", cursor)
    return match["after"] or None, int(match["skip"])


def result_cursor(after: str | None, skip: int) -> str:
    return f"{after or ''}.{skip}"


def rows_within(rows: Sequence[ResultRow], budget: int) -> int:
    """How many leading rows fit in `budget` bytes, counting each row's text line and JSON; at least one."""
    size = 0
    for count, row in enumerate(rows):
        size += len(result_line(row).encode()) + len(row.model_dump_json(exclude_none=True).encode()) + 2
        if size > budget and count > 0:
            return count
    return len(rows)


def results_hint(rows: Sequence[ResultRow], next_cursor: str | None, status: str | None) -> str:
    if not rows and next_cursor is None:
        return f"No document has status {status!r}." if status else "The run has no documents yet."
    more = "More: call again with cursor. " if next_cursor else ""
    return more + f"Scores per document: {names.GET_METRICS}(view='by_document', document_id=...)."


def result_line(row: ResultRow) -> str:
    name = f"{row.filename} ({row.document_id})" if row.filename else str(row.document_id)
    bits = [name, row.status]
    if row.duration_s is not None:
        bits.append(duration_text(row.duration_s))
    return "- " + " · ".join(bits) + (f": {row.error}" if row.error else "")


def render_result_list(results: ResultList) -> str:
    which = f" with status {results.status_filter}" if results.status_filter else ""
    lines = [f"{results.run_id}: {len(results.results)} document{'' if len(results.results) == 1 else 's'}{which}"]
    lines.extend(result_line(row) for row in results.results)
    if results.next_cursor:
        lines.append(f"More: cursor={results.next_cursor}")
    lines.append(f"Next: {results.hint}")
    return "\n".join(lines)
