"""An eval run's results as a model reads them: failures first, each assertion's actual value against the
expected one, blocked evals with why, and the evals that drifted from their block named as such."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from ..api.evals import BLOCKED, FAILED, PASSED, Eval, EvalResult, EvalRun
from ..tools import names
from .text import clip

VALUE_MAX = 120
WHY_MAX = 160
NAME_MAX = 48
ORDER = {FAILED: 0, BLOCKED: 1, None: 2, PASSED: 3}  # failures first; still running before passes


@dataclass
class EvalEvidence:
    """What eval views are made from: the run, its results, and the workflow's evals (for names and drift)."""

    run: EvalRun
    results: list[EvalResult]
    evals: Mapping[str, Eval] = field(default_factory=dict[str, Eval])
    warnings: list[str] = field(default_factory=list[str])


class EvalResultRow(BaseModel):
    eval_id: str
    name: str | None = None
    block_id: str | None = None
    outcome: str | None = Field(description="passed, failed, blocked (could not be evaluated), or null while running.")
    condition: str | None = Field(default=None, description="The assertion's kind: equals, number_compare, …")
    actual: str | None = Field(default=None, description="What the block produced, as JSON, cut short.")
    expected: str | None = Field(default=None, description="What the assertion expected, as JSON, cut short.")
    score: float | None = None
    threshold: float | None = None
    why: str | None = Field(
        default=None,
        description="Retab's reason for a failure or a block; null when it only restates actual vs expected.",
    )
    drifted: bool | None = Field(
        default=None,
        description="True when the eval no longer fits its block (schema drift or stale): not a regression.",
    )


class EvalResultList(BaseModel):
    run_id: str
    counts: dict[str, int] = Field(description="Results by outcome: passed, failed, blocked, running.")
    rows: list[EvalResultRow]
    next_cursor: str | None = None
    hint: str


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return clip(json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False), VALUE_MAX)


def result_row(result: EvalResult, evals: Mapping[str, Eval]) -> EvalResultRow:
    assertion = result.assertion_result
    saved = evals.get(result.eval_id)
    why = None
    if assertion and assertion.failure and assertion.failure.message:
        why = clip(assertion.failure.message, WHY_MAX)
    elif result.warnings:
        why = clip(result.warnings[0], WHY_MAX)
    actual = _json(assertion.actual_value) if assertion else None
    expected = _json(assertion.expected_value) if assertion else None
    if why is not None and _restates(why, actual, expected):
        why = None
    return EvalResultRow(
        eval_id=result.eval_id,
        name=clip(saved.name, NAME_MAX) if saved and saved.name else None,
        block_id=result.block_id,
        outcome=result.outcome,
        condition=assertion.condition_kind if assertion else None,
        actual=actual,
        expected=expected,
        score=assertion.score if assertion else None,
        threshold=assertion.threshold if assertion else None,
        why=why,
        drifted=True if saved is not None and saved.drifted else None,
    )


def _restates(why: str, actual: str | None, expected: str | None) -> bool:
    """Retab's reason says no more than the values beside it ("number_compare: expected 5, got 4")."""
    values = [value.strip('"') for value in (actual, expected) if value is not None]
    return len(values) == 2 and all(value in why for value in values) and len(why) < 80


def ordered_rows(evidence: EvalEvidence) -> list[EvalResultRow]:
    rows = [result_row(result, evidence.evals) for result in evidence.results]
    return sorted(rows, key=lambda row: (ORDER.get(row.outcome, 2), row.eval_id))


def outcome_counts(rows: list[EvalResultRow]) -> dict[str, int]:
    counts = {PASSED: 0, FAILED: 0, BLOCKED: 0, "running": 0}
    for row in rows:
        counts[row.outcome if row.outcome in counts else "running"] += 1
    return counts


def result_list(evidence: EvalEvidence, *, outcome: str | None, offset: int, limit: int) -> EvalResultList:
    rows = ordered_rows(evidence)
    counts = outcome_counts(rows)
    chosen = [row for row in rows if outcome is None or row.outcome == outcome]
    page = chosen[offset : offset + limit]
    more = offset + limit < len(chosen)
    cursor = f"r{offset + limit}" if more else None
    run_id = evidence.run.id
    if more:
        hint = f"More: call {names.LIST_EVAL_RESULTS} again with cursor='{cursor}'."
    elif counts[FAILED]:
        hint = f"{names.TRIAGE_RUN}(run_id='{run_id}') groups the failures by block and assertion."
    else:
        hint = f"{names.COMPARE_EVALS}(candidate_run_id='{run_id}') compares with the run before."
    return EvalResultList(run_id=run_id, counts=counts, rows=page, next_cursor=cursor, hint=hint)


def parse_cursor(cursor: str | None) -> int:
    """The offset a cursor of this list stands for; ValueError for one it did not give."""
    if not cursor:
        return 0
    if not cursor.startswith("r") or not cursor[1:].isdigit():
        raise ValueError(cursor)
    return int(cursor[1:])


def row_line(row: EvalResultRow) -> str:
    name = f" ({row.name})" if row.name else ""
    outcome = row.outcome or "running"
    bits = [f"- {row.eval_id}{name} {outcome.upper() if outcome == FAILED else outcome}"]
    if row.condition:
        bits.append(row.condition)
    if row.outcome in (FAILED, BLOCKED) and (row.actual is not None or row.expected is not None):
        bits.append(f"actual {row.actual or 'nothing'} vs expected {row.expected or 'nothing'}")
    if row.score is not None and row.threshold is not None:
        bits.append(f"score {row.score:.2f} (threshold {row.threshold:.2f})")
    line = " · ".join(bits)
    if row.why and row.outcome != PASSED:
        line += f": {row.why}"
    if row.drifted:
        line += " [eval drifted from its block: not a regression]"
    return line


def render_result_list(listing: EvalResultList) -> str:
    counts = listing.counts
    head = (
        f"{listing.run_id}: {counts[FAILED]} failed, {counts[BLOCKED]} blocked, {counts[PASSED]} passed"
        + (f", {counts['running']} still running" if counts["running"] else "")
        + (" (failures first):" if listing.rows else ".")
    )
    return "\n".join([head, *(row_line(row) for row in listing.rows), f"Next: {listing.hint}"])
