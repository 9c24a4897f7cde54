"""Did a change break or fix evals? Two eval runs' results paired by eval, judged two ways (views/verdicts.py):

- the gate, strict, as Retab's CLI has it: any regression (passed -> failed) of an eval that fits its block
  fails it;
- McNemar's exact test on the discordant pairs: is the balance of fixes and regressions more than the flips
  of an unchanged configuration (LLM-judged assertions flip now and then)? The k-th candidate against one
  base is judged at p * k(k+1)/2, as experiment comparisons are.

Blocked results (the assertion could not be evaluated) are neither pass nor fail: left out of both. Evals
that drifted from their block (schema drift, stale) are left out of both too and named apart: a change in
them says more about the eval than about the block. No verdict at all when there is nothing to pair, when a
run has not completed, or when the two runs are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from ..api.evals import BLOCKED, FAILED, PASSED
from ..tools import names
from .eval_results import EvalEvidence, EvalResultRow, result_row
from .text import clip
from .verdicts import discordant_pairs, pass_fail_verdict

CHANGES_SHOWN = 8
IDS_SHOWN = 10
RULE = (
    "Gate: failed on any regression (passed -> failed) of an eval that fits its block. Verdict: McNemar's exact "
    "test on the regressions and fixes; improved or regressed when p * k(k+1)/2 < 0.05 for the k-th candidate "
    "against this base, else no detectable change. Blocked results and drifted evals are left out of both."
)


@dataclass
class EvalPair:
    """What the comparison is made from: both runs' evidence, and where the base came from."""

    base: EvalEvidence
    candidate: EvalEvidence
    candidate_index: int = 1  # this candidate's place among the runs tried against the base
    base_chosen: str | None = None  # the rule that picked the base, when the caller gave none
    warnings: list[str] = field(default_factory=list[str])


class EvalChange(BaseModel):
    eval_id: str
    name: str | None = None
    block_id: str | None = None
    condition: str | None = None
    actual: str | None = Field(default=None, description="The candidate's value, as JSON, cut short.")
    expected: str | None = None
    why: str | None = None


class EvalComparison(BaseModel):
    base_run_id: str
    candidate_run_id: str
    base_chosen: str | None = Field(default=None, description="How the base was picked, when none was given.")
    paired_evals: int = Field(description="Evals with a pass or a fail in both runs (blocked and drifted left out).")
    regressions: list[EvalChange] = Field(description="Passed in the base, failed in the candidate.")
    fixes: list[str] = Field(description="Eval ids that failed in the base and pass in the candidate.")
    regression_count: int
    fix_count: int
    still_failing: int
    gate: str | None = Field(description="passed or failed (any regression), null when there is no verdict.")
    verdict: str = Field(description="improved, regressed, no detectable change, or no verdict.")
    p_value: float | None = Field(
        default=None, description="McNemar's exact two-sided p, as if this were the only try."
    )
    adjusted_p_value: float | None = Field(default=None, description="p * k(k+1)/2: the verdict is adjusted p < 0.05.")
    candidate_index: int = Field(description="k: this candidate's place among the eval runs tried against the base.")
    why_no_verdict: str | None = None
    drifted: list[str] = Field(description="Eval ids left out: they drifted from their block.")
    blocked: list[str] = Field(description="Eval ids blocked in either run (could not be evaluated).")
    only_in_base: list[str]
    only_in_candidate: list[str]
    rule: str
    warnings: list[str]
    hint: str


def _outcomes(evidence: EvalEvidence) -> dict[str, bool | None]:
    mapping = {PASSED: True, FAILED: False, BLOCKED: None}
    return {result.eval_id: mapping.get(result.outcome or "") for result in evidence.results}


def _no_verdict(pair: EvalPair) -> str | None:
    base, candidate = pair.base.run, pair.candidate.run
    if base.id == candidate.id:
        return "the base and the candidate are the same run: compare a run with the one before it"
    unfinished = [run.id for run in (base, candidate) if run.status != "completed"]
    if unfinished:
        return f"{', '.join(unfinished)} did not complete: wait for it, then compare again"
    if base.workflow_id != candidate.workflow_id:
        return "the runs are of two workflows: compare eval runs of one workflow"
    return None


def compare_evals(pair: EvalPair) -> EvalComparison:
    base_out, candidate_out = _outcomes(pair.base), _outcomes(pair.candidate)
    evals = {**pair.base.evals, **pair.candidate.evals}
    drifted = sorted(eval_id for eval_id, saved in evals.items() if saved.drifted and eval_id in candidate_out)
    fitting_base = {k: v for k, v in base_out.items() if k not in drifted}
    fitting_candidate = {k: v for k, v in candidate_out.items() if k not in drifted}
    discord = discordant_pairs(fitting_base, fitting_candidate)
    rows = {result.eval_id: result_row(result, evals) for result in pair.candidate.results}
    blocked = sorted(
        k
        for k in base_out.keys() | candidate_out.keys()
        if base_out.get(k, False) is None or candidate_out.get(k, False) is None
    )
    still_failing = sum(1 for k, v in fitting_candidate.items() if v is False and fitting_base.get(k) is False)
    why = _no_verdict(pair)
    if why is None and discord.paired == 0:
        why = "no eval has a pass or a fail in both runs (blocked, drifted or not in both): nothing to pair"
    base_id, candidate_id = pair.base.run.id, pair.candidate.run.id
    warnings = list(pair.warnings) + pair.base.warnings + pair.candidate.warnings
    if pair.base.run.target != pair.candidate.run.target or pair.base.run.eval_id != pair.candidate.run.eval_id:
        warnings.append("The runs ran different sets of evals (another block or scope): only the evals in both pair.")
    if why is not None:
        gate, verdict, p, adjusted = None, "no verdict", None, None
    else:
        judged = pass_fail_verdict(len(discord.regressions), len(discord.fixes), candidate_index=pair.candidate_index)
        gate, verdict, p, adjusted = (
            judged.gate,
            judged.verdict,
            round(judged.p_value, 4),
            round(judged.adjusted_p_value, 4),
        )
    comparison = EvalComparison(
        base_run_id=base_id,
        candidate_run_id=candidate_id,
        base_chosen=pair.base_chosen,
        paired_evals=discord.paired,
        regressions=[_change(rows[k]) for k in discord.regressions if k in rows][:CHANGES_SHOWN],
        fixes=discord.fixes[:IDS_SHOWN],
        regression_count=len(discord.regressions),
        fix_count=len(discord.fixes),
        still_failing=still_failing,
        gate=gate,
        verdict=verdict,
        p_value=p,
        adjusted_p_value=adjusted,
        candidate_index=pair.candidate_index,
        why_no_verdict=why,
        drifted=drifted[:IDS_SHOWN],
        blocked=blocked[:IDS_SHOWN],
        only_in_base=sorted(base_out.keys() - candidate_out.keys())[:IDS_SHOWN],
        only_in_candidate=sorted(candidate_out.keys() - base_out.keys())[:IDS_SHOWN],
        rule=RULE,
        warnings=warnings,
        hint="",
    )
    return comparison.model_copy(update={"hint": _hint(comparison)})


def _change(row: EvalResultRow) -> EvalChange:
    return EvalChange(
        eval_id=row.eval_id,
        name=row.name,
        block_id=row.block_id,
        condition=row.condition,
        actual=row.actual,
        expected=row.expected,
        why=clip(row.why, 120) if row.why else None,
    )


def _hint(result: EvalComparison) -> str:
    if result.why_no_verdict:
        return f"No verdict: {result.why_no_verdict}."
    if result.regression_count:
        return (
            f"Fix the regressions first: {names.LIST_EVAL_RESULTS}(run_id='{result.candidate_run_id}', "
            "outcome='failed') shows each, actual against expected."
        )
    return f"No regression. {names.TRIAGE_RUN}(run_id='{result.candidate_run_id}') for what still fails."


def render_eval_comparison(result: EvalComparison) -> str:
    head = f"Eval runs {result.base_run_id} -> {result.candidate_run_id}"
    if result.base_chosen:
        head += f" (base: {result.base_chosen})"
    lines = [head + ":"]
    if result.why_no_verdict:
        lines.append(f"Verdict: no verdict: {result.why_no_verdict}.")
    else:
        k = result.candidate_index
        tries = f"; candidate {k} against this base, adjusted p = {result.adjusted_p_value}" if k > 1 else ""
        lines.append(
            f"Gate: {result.gate} ({result.regression_count} regression(s)). Verdict: {result.verdict} (McNemar "
            f"exact, {result.fix_count} fix(es) vs {result.regression_count} regression(s) over {result.paired_evals} "
            f"paired evals, p = {result.p_value}{tries})."
        )
    for change in result.regressions:
        name = f" ({change.name})" if change.name else ""
        where = f" in block {change.block_id}" if change.block_id else ""
        values = f": actual {change.actual} vs expected {change.expected}" if change.actual or change.expected else ""
        lines.append(f"- REGRESSED {change.eval_id}{name}{where}, {change.condition or 'assertion'}{values}")
    if result.regression_count > len(result.regressions):
        lines.append(f"- … {result.regression_count - len(result.regressions)} more regression(s)")
    if result.fixes:
        more = f" (+{result.fix_count - len(result.fixes)} more)" if result.fix_count > len(result.fixes) else ""
        lines.append(f"Fixed: {', '.join(result.fixes)}{more}.")
    if result.still_failing:
        lines.append(f"Still failing in both: {result.still_failing}.")
    if result.drifted:
        lines.append(f"Left out, drifted from their block (fix the eval): {', '.join(result.drifted)}.")
    if result.blocked:
        lines.append(f"Left out, blocked in a run: {', '.join(result.blocked)}.")
    if result.only_in_base or result.only_in_candidate:
        base_only, candidate_only = len(result.only_in_base), len(result.only_in_candidate)
        lines.append(f"Not in both: {base_only} only in the base, {candidate_only} only in the candidate.")
    lines.extend(f"Warning: {warning}" for warning in result.warnings)
    lines.append(f"Rule: {result.rule}")
    lines.append(f"Next: {result.hint}")
    return "\n".join(lines)
