"""Why an eval run came out as it did, in one answer under 4 KB: failures grouped by block and assertion
kind (one example each, actual against expected), blocked evals with why, and the evals that drifted from
their block (schema drift, stale) named apart, since their failures say more about the eval than the block."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field

from ..api.evals import BLOCKED, DRIFTED_ASSERTIONS, FAILED
from ..kinds.readers import EVAL_KIND
from ..tools import names
from .eval_results import EvalEvidence, EvalResultRow, ordered_rows, outcome_counts, row_line
from .runs import RunView, view_of
from .text import clip

GROUPS_SHOWN = 4
LISTED = 4
WHY_MAX = 120


class EvalFailures(BaseModel):
    block_id: str | None
    condition: str | None = Field(description="The assertion kind these evals share.")
    count: int
    eval_ids: list[str] = Field(description="Up to 4 of them.")
    example: EvalResultRow = Field(description="One of them, with actual against expected.")


class Noted(BaseModel):
    eval_id: str
    name: str | None = None
    why: str | None = None


class EvalTriage(BaseModel):
    verdict: str = Field(description="The answer in one or two sentences.")
    run: RunView
    counts: dict[str, int]
    failures: list[EvalFailures] = Field(description="Failed evals that fit their block, by block and assertion kind.")
    blocked: list[Noted] = Field(description="Evals whose assertion could not be evaluated, and why.")
    drifted: list[Noted] = Field(
        description="Evals that drifted from their block (schema or assertion drift, stale): fix the eval, not "
        "the block."
    )
    warnings: list[str]
    next_calls: list[str]


def eval_triage(evidence: EvalEvidence, now: datetime) -> EvalTriage:
    view = view_of(evidence.run, EVAL_KIND, now)
    rows = ordered_rows(evidence)
    drifted_ids = {eval_id for eval_id, saved in evidence.evals.items() if saved.drifted}
    failed = [row for row in rows if row.outcome == FAILED and row.eval_id not in drifted_ids]
    groups: dict[tuple[str | None, str | None], list[EvalResultRow]] = defaultdict(list)
    for row in failed:
        groups[(row.block_id, row.condition)].append(row)
    failures = [
        EvalFailures(
            block_id=block,
            condition=condition,
            count=len(members),
            eval_ids=[m.eval_id for m in members[:LISTED]],
            example=members[0],
        )
        for (block, condition), members in sorted(groups.items(), key=lambda item: -len(item[1]))[:GROUPS_SHOWN]
    ]
    blocked = [
        Noted(eval_id=row.eval_id, name=row.name, why=clip(row.why, WHY_MAX) if row.why else None)
        for row in rows
        if row.outcome == BLOCKED and row.eval_id not in drifted_ids
    ][:LISTED]
    drifted = [
        Noted(eval_id=eval_id, name=saved.name, why=_drift_reason(evidence, eval_id))
        for eval_id, saved in sorted(evidence.evals.items())
        if eval_id in drifted_ids and any(row.eval_id == eval_id for row in rows)
    ][:LISTED]
    report = EvalTriage(
        verdict="",
        run=view,
        counts=outcome_counts(rows),
        failures=failures,
        blocked=blocked,
        drifted=drifted,
        warnings=evidence.warnings,
        next_calls=[],
    )
    return report.model_copy(update={"verdict": _verdict(report, len(failed)), "next_calls": _next_calls(report)})


def _drift_reason(evidence: EvalEvidence, eval_id: str) -> str:
    saved = evidence.evals[eval_id]
    reasons: list[str] = []
    if saved.schema_drift in ("partial", "drifted"):
        reasons.append(
            f"schema {saved.schema_drift}"
            + (f": {clip(saved.schema_drift_detail, 80)}" if saved.schema_drift_detail else "")
        )
    if saved.drift is not None and saved.drift.status in ("drifted", "broken"):
        reasons.append(f"target {saved.drift.status}")
    if saved.assertion_drift_status in DRIFTED_ASSERTIONS:
        reasons.append(f"assertion {saved.assertion_drift_status}")
    if saved.freshness is not None and saved.freshness.status == "stale":
        reasons.append("stale: " + (", ".join(saved.freshness.reasons) or "inputs changed"))
    return "; ".join(reasons)


def _verdict(report: EvalTriage, failed_fitting: int) -> str:
    run = report.run
    counts = report.counts
    if not run.finished:
        return f"Still {run.status}: {run.evals_finished or 0} of {run.evals_total or 0} evals done so far."
    if run.status == "error":
        return f"The eval run failed: {run.error.message if run.error else 'no message'}."
    if run.status == "cancelled":
        return "Cancelled before every eval ran."
    if not counts[FAILED] and not counts[BLOCKED]:
        return f"Every eval passed ({counts['passed']})."
    bits: list[str] = []
    if failed_fitting:
        by_block: dict[str | None, list[str]] = defaultdict(list)
        for group in report.failures:
            by_block[group.block_id].extend([group.condition or "assertion"] * group.count)
        where = "; ".join(
            f"{len(kinds)} in block {block} ({', '.join(sorted(set(kinds)))})"
            for block, kinds in sorted(by_block.items(), key=lambda item: -len(item[1]))[:3]
        )
        bits.append(f"{failed_fitting} eval(s) failed that fit their block: {where}")
    if report.drifted:
        bits.append(f"{len(report.drifted)} drifted from their block (fix the eval, not the block)")
    if counts[BLOCKED]:
        bits.append(f"{counts[BLOCKED]} blocked (could not be evaluated)")
    return "; ".join(bits) + "."


def _next_calls(report: EvalTriage) -> list[str]:
    run_id = report.run.run_id
    calls: list[str] = []
    if not report.run.finished:
        return [f"{names.WAIT_RUN}(run_id='{run_id}')"]
    if report.counts[FAILED] or report.counts[BLOCKED]:
        calls.append(f"{names.LIST_EVAL_RESULTS}(run_id='{run_id}', outcome='failed')")
    calls.append(f"{names.COMPARE_EVALS}(candidate_run_id='{run_id}')")
    return calls


def render_eval_triage(report: EvalTriage) -> str:
    lines = [f"Verdict: {report.verdict}", report.run.render(trace=False).split("\nNext:")[0]]
    if report.failures:
        lines.append("Failures, by block and assertion:")
        for group in report.failures:
            more = f" (+{group.count - 1} more: {', '.join(group.eval_ids[1:])})" if group.count > 1 else ""
            lines.append(f"- {group.count}x block {group.block_id}, {group.condition or 'assertion'}{more}")
            lines.append("  " + row_line(group.example)[2:])
    if report.blocked:
        lines.append(
            "Blocked (could not be evaluated): "
            + "; ".join(f"{b.eval_id}: {b.why or 'no reason given'}" for b in report.blocked)
        )
    if report.drifted:
        lines.append(
            "Drifted from their block (not regressions): " + "; ".join(f"{d.eval_id} ({d.why})" for d in report.drifted)
        )
    lines.extend(f"Warning: {warning}" for warning in report.warnings)
    lines.append("Next calls:")
    lines.extend(f"- {call}" for call in report.next_calls)
    return "\n".join(lines)
