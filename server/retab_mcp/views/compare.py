"""Did a change help? Two runs compared document by document, and field by field, with verdicts that
agree with their own intervals (views/verdicts.py).

What could make a verdict meaningless is checked first (`no_verdict_reason`): the same run twice, a run
not completed, stale or missing metrics, fewer than MIN_PAIRED documents scored in both. Then the
documents both runs scored are paired, each document's change in agreement is one observation, and the
sign-flip test says whether their mean differs from 0 by more than run-to-run noise, at the level of the
k-th candidate compared with this base (`count_candidates`). Each field is tested the same way over the
documents, Holm-corrected across fields. Reading the API is the tool's part (tools/compare.py); this
module only turns what was read into the report.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..api import statuses
from ..tools import names
from . import verdicts
from .text import clip

if TYPE_CHECKING:
    from ..api.models import Metrics, Run

MOVERS_SHOWN = 3
FIELDS_SHOWN = 4
FIELDS_MOVED_SHOWN = 2
IDS_SHOWN = 5
NAME_MAX = 60
WHY_MAX = 400
BUDGET_BYTES = 4_096
RULE = (
    "improved / regressed when the interval of the mean delta (the sign-flip test inverted) lies above / below 0, "
    "i.e. adjusted p < 0.05; the k-th candidate against one base: p x k(k+1)/2; no verdict without two completed "
    f"runs, fresh metrics and >= {verdicts.MIN_PAIRED} pairs; fields: the same test, Holm-corrected."
)
NO_VERDICT = "no verdict"


class DocumentDelta(BaseModel):
    document_id: str
    filename: str | None = None
    base: float
    candidate: float
    delta: float


class FieldDelta(BaseModel):
    path: str
    document_id: str
    filename: str | None = None
    base: float
    candidate: float
    delta: float


class FieldChange(BaseModel):
    """One field tested over the documents both runs scored it in."""

    path: str
    paired_documents: int
    mean_delta: float
    p_value: float = Field(description="The field's own two-sided sign-flip p.")
    adjusted_p_value: float = Field(description="Holm-corrected across the fields tested (and for k); < 0.05: named.")
    verdict: str


class DeltaSpread(BaseModel):
    mean: float
    median: float
    min: float
    max: float
    sd: float = Field(description="Standard deviation of the per-document deltas.")


class ComparisonReport(BaseModel):
    """Whether the candidate run agrees more or less than the base, and whether that is more than noise."""

    base_run_id: str
    candidate_run_id: str
    verdict: str = Field(
        description="'improved', 'regressed', 'no detectable change', or 'no verdict' (why_no_verdict says why); "
        "the rule is in `rule`."
    )
    why_no_verdict: str | None = Field(default=None, description="Why there is no verdict, and what would give one.")
    paired_documents: int = Field(description="Documents scored in both runs: the n of the test.")
    base_score: float | None = None
    candidate_score: float | None = None
    score_delta: float | None = Field(default=None, description="candidate_score - base_score (Retab's run scores).")
    mean_delta: float | None = Field(
        default=None, description="Mean of the per-document deltas of the paired documents."
    )
    score_vs_mean: str | None = Field(default=None, description="Why score_delta and mean_delta differ.")
    ci_low: float | None = Field(
        default=None, description="Low end of the interval of mean_delta at interval_level (the test inverted)."
    )
    ci_high: float | None = Field(default=None, description="High end of that interval.")
    interval_level: float | None = Field(default=None, description="0.95 for a first candidate; higher for the k-th.")
    p_value: float | None = Field(default=None, description="Two-sided sign-flip p, as if this were the only try.")
    adjusted_p_value: float | None = Field(
        default=None, description="p_value times k(k+1)/2 for the k-th candidate against this base (at most 1)."
    )
    candidate_index: int | None = Field(
        default=None, description="k: this candidate's place among the runs compared with this base (see rule)."
    )
    min_detectable_shift: float | None = Field(
        default=None, description="The change in every document's agreement this test would catch 80% of the time."
    )
    reading: str | None = Field(
        default=None,
        description="With no detectable change: 'no change' (interval within ±0.02) or 'too few documents to tell'.",
    )
    documents_needed: int | None = Field(
        default=None, description="About how many paired documents would catch a change of 0.02 80% of the time."
    )
    deltas: DeltaSpread | None = None
    same_configuration: bool | None = Field(
        default=None, description="Both runs used the same block configuration (block_execution_fingerprint)."
    )
    same_documents: bool | None = Field(default=None, description="Both runs had the same documents_fingerprint.")
    noise_sd: float | None = Field(
        default=None, description="With the same configuration and documents: the sd of deltas, run-to-run noise."
    )
    base_chosen: str | None = Field(default=None, description="How the base was picked when none was given.")
    only_in_base: list[str] = Field(default_factory=list[str])
    only_in_candidate: list[str] = Field(default_factory=list[str])
    regressed: list[DocumentDelta] = Field(default_factory=list[DocumentDelta])
    improved: list[DocumentDelta] = Field(default_factory=list[DocumentDelta])
    fields_tested: int | None = Field(default=None, description="Fields tested (>= 6 paired documents each).")
    fields_changed: list[FieldChange] = Field(
        default_factory=list[FieldChange], description="Fields whose change is beyond noise, most significant first."
    )
    fields_moved: list[FieldDelta] = Field(default_factory=list[FieldDelta])
    rule: str = RULE
    method: str = Field(description="How the interval and the p-value were computed.")
    warnings: list[str] = Field(default_factory=list[str])
    hint: str


@dataclass
class Comparison:
    """What was read for a comparison (tools/compare.py reads it)."""

    base: Run
    candidate: Run
    base_metrics: Metrics | None = None
    candidate_metrics: Metrics | None = None
    # Per paired document read field by field: path -> (base score, candidate score).
    field_scores: dict[str, dict[str, tuple[float, float]]] = field(
        default_factory=dict[str, dict[str, tuple[float, float]]]
    )
    field_documents_asked: int = 0
    candidate_index: int = 1
    base_chosen: str | None = None
    warnings: list[str] = field(default_factory=list[str])


# Choosing the base and counting the candidates, from the experiment's runs as Retab lists them


def choose_base(runs_newest_first: Sequence[Run], candidate: Run) -> Run | None:
    """The latest completed run before the candidate in the listing, on the same documents."""
    seen = False
    for run in runs_newest_first:
        if run.id == candidate.id:
            seen = True
        elif (
            seen
            and run.status == statuses.COMPLETED
            and _same(run.documents_fingerprint, candidate.documents_fingerprint) is not False
        ):
            return run
    return None


def count_candidates(runs_newest_first: Sequence[Run], base: Run, candidate: Run) -> int:
    """k: the runs of the base's experiment created after the base, up to and including the candidate, on
    the base's documents, that did not end in error or cancelled (each one a try against this base). 1 when
    the base is newer than the candidate or the candidate is not listed; when the base is not listed (older
    than the runs listed), the tries counted so far, a lower bound."""
    if base.id == candidate.id:
        return 1
    k = 0
    for run in runs_newest_first:
        if run.id == candidate.id:
            k = 1
        elif run.id == base.id:
            break
        elif k and _counts(run, base):
            k += 1
    return max(1, k)


def _counts(run: Run, base: Run) -> bool:
    ended_badly = run.status in (statuses.ERROR, statuses.CANCELLED)
    return not ended_badly and _same(run.documents_fingerprint, base.documents_fingerprint) is not False


# Whether a verdict can be drawn at all


def no_verdict_reason(found: Comparison) -> str | None:
    """Why no verdict can be drawn from what was read, with what would give one; None when one can."""
    base, candidate = found.base, found.candidate
    if base.id == candidate.id:
        return "the base and the candidate are the same run: every delta is 0. Compare two different runs."
    pairs = _pairs(found)
    different = base.experiment_id and candidate.experiment_id and base.experiment_id != candidate.experiment_id
    if different and len(pairs) < verdicts.MIN_PAIRED:
        return (
            f"the runs are of different experiments ({base.experiment_id}, {candidate.experiment_id}), whose "
            "documents do not pair. Compare two runs of one experiment (omit base_run_id to get the "
            "candidate's previous run)."
        )
    for role, run in (("candidate", candidate), ("base", base)):
        if not run.lifecycle.is_terminal:
            done = f"{run.completed_document_count} of {run.total_document_count} documents"
            return (
                f"the {role} run is {run.status} ({done}); its scores so far are not a verdict. "
                f"Wait for it ({names.WAIT_RUN}(run_id='{run.id}')), then compare again."
            )
        if run.status != statuses.COMPLETED:
            return (
                f"the {role} run ended {run.status}: a verdict needs two completed runs (the documents a stopped "
                "run scored are not a sample of all of them). Start a new run and compare that."
            )
    for role, run, metrics in (("candidate", candidate, found.candidate_metrics), ("base", base, found.base_metrics)):
        if metrics is None:
            return f"the {role} run's scores could not be read (see warnings); compare again later."
        if metrics.kind == "stale_metrics":
            reasons = ", ".join(metrics.stale_reasons) or "not given"
            return (
                f"the {role} run's metrics are stale ({reasons}): they no longer describe the block as it is. The "
                f"verdict waits on a metrics refresh: start a run of the experiment ({names.START}) and compare it "
                f"with run {run.id if role == 'base' else base.id}."
            )
        if metrics.kind != "summary":
            return f"the {role} run has no metrics yet ({metrics.kind}); compare again once it has."
    base_n, candidate_n = len(_scores(found.base_metrics)), len(_scores(found.candidate_metrics))
    if len(pairs) < verdicts.MIN_PAIRED:
        return (
            f"only {len(pairs)} documents are scored in both runs (base {base_n}, candidate {candidate_n}); a verdict "
            f"needs at least {verdicts.MIN_PAIRED}, since below that no outcome reaches p < 0.05. Compare runs on "
            "the same documents, or fix the documents that failed."
        )
    return None


# Building the report


def build_comparison(found: Comparison) -> ComparisonReport:
    pairs = _pairs(found)
    base_scores, candidate_scores = _scores(found.base_metrics), _scores(found.candidate_metrics)
    deltas = [pair.delta for pair in pairs]
    why = no_verdict_reason(found)
    k = found.candidate_index
    test = verdicts.sign_flip(deltas, candidate_index=k)
    same_config = _same(found.base.block_execution_fingerprint, found.candidate.block_execution_fingerprint)
    same_docs = _same(found.base.documents_fingerprint, found.candidate.documents_fingerprint)
    only_base = sorted(set(base_scores) - set(candidate_scores))
    only_candidate = sorted(set(candidate_scores) - set(base_scores))
    judged = why is None
    warnings = _comparability(found, len(pairs), only_base, only_candidate, same_config, same_docs, judged)
    warnings += found.warnings
    base_score, candidate_score = _run_score(found.base), _run_score(found.candidate)
    score_delta = (
        round(candidate_score - base_score, 4) if base_score is not None and candidate_score is not None else None
    )
    fields = _field_verdicts(found, k) if judged else None
    # Without a verdict, the deltas are shown only between two different completed runs: partial scores of
    # a run still going invite a look that is not a test.
    completed = found.base.status == found.candidate.status == statuses.COMPLETED
    shown = pairs if judged or (completed and found.base.id != found.candidate.id) else []
    by_delta = sorted(shown, key=lambda pair: pair.delta)
    report = ComparisonReport(
        base_run_id=found.base.id,
        candidate_run_id=found.candidate.id,
        verdict=test.verdict if judged else NO_VERDICT,
        why_no_verdict=clip(why, WHY_MAX) if why else None,
        paired_documents=test.n,
        base_score=base_score,
        candidate_score=candidate_score,
        score_delta=score_delta,
        mean_delta=round(test.mean, 4) if shown else None,
        score_vs_mean=_score_vs_mean(test.n, len(only_base) + len(only_candidate))
        if score_delta is not None and test.n and judged
        else None,
        ci_low=keep_sign(test.low) if judged else None,
        ci_high=keep_sign(test.high) if judged else None,
        interval_level=round(1 - test.alpha, 6) if judged and test.low is not None else None,
        p_value=keep_side(test.p_value, test.alpha) if judged else None,
        adjusted_p_value=keep_side(test.adjusted_p_value, verdicts.ALPHA) if judged else None,
        candidate_index=k if judged else None,
        min_detectable_shift=round(test.min_detectable_shift, 4)
        if judged and test.min_detectable_shift is not None
        else None,
        reading=test.reading if judged else None,
        documents_needed=verdicts.documents_needed(test)
        if judged and test.reading == "too few documents to tell"
        else None,
        deltas=DeltaSpread(
            mean=round(test.mean, 4),
            median=round(statistics.median(deltas), 4),
            min=min(deltas),
            max=max(deltas),
            sd=round(test.sd, 4),
        )
        if shown
        else None,
        same_configuration=same_config,
        same_documents=same_docs,
        noise_sd=round(test.sd, 4) if same_config and same_docs and test.n > 1 and judged else None,
        base_chosen=found.base_chosen,
        only_in_base=only_base[:IDS_SHOWN],
        only_in_candidate=only_candidate[:IDS_SHOWN],
        regressed=[pair for pair in by_delta if pair.delta < 0][:MOVERS_SHOWN],
        improved=[pair for pair in reversed(by_delta) if pair.delta > 0][:MOVERS_SHOWN],
        fields_tested=len(fields) if fields is not None else None,
        fields_changed=[f for f in fields or [] if f.verdict != "no detectable change"][:FIELDS_SHOWN],
        fields_moved=_fields_moved(found, pairs),
        method=_method(test, found) if judged else "no test: see why_no_verdict",
        warnings=warnings,
        hint="",
    )
    return report.model_copy(update={"hint": _hint(report)})


def _method(test: verdicts.SignFlip, found: Comparison) -> str:
    patterns = f"exact, {test.patterns:,} patterns" if test.exact else f"{test.patterns:,} patterns, fixed seed"
    fields = (
        f"; fields from {len(found.field_scores)} of {found.field_documents_asked} documents"
        if found.field_scores
        else ""
    )
    return f"sign-flip over {test.n} documents ({patterns}); interval = the test inverted{fields}"


def _score_vs_mean(paired: int, unpaired: int) -> str:
    left_out = f", {unpaired} left out" if unpaired else ""
    return f"run scores are each run's own aggregate; the mean delta pairs the {paired} documents both scored{left_out}"


def _comparability(
    found: Comparison,
    paired: int,
    only_base: list[str],
    only_candidate: list[str],
    same_config: bool | None,
    same_docs: bool | None,
    judged: bool,
) -> list[str]:
    """What limits the comparison; without a verdict, only what no_verdict_reason does not say already."""
    base, candidate = found.base, found.candidate
    warnings: list[str] = []
    if base.id == candidate.id:
        return warnings
    if base.block_type and candidate.block_type and base.block_type != candidate.block_type:
        warnings.append(f"Different block types ({base.block_type}, {candidate.block_type}): scores may not compare.")
    if not judged:
        return warnings
    made = base.timing.created_at, candidate.timing.created_at
    if made[0] is not None and made[1] is not None and made[0] > made[1]:
        warnings.append("The base run is newer than the candidate: a negative delta means the newer run agrees more.")
    if same_config:
        warnings.append(
            "Same block configuration (block_execution_fingerprint): nothing changed in the block, so this measures "
            "run-to-run noise; a verdict other than no detectable change means something outside the block moved "
            "(the model behind it) or is the 1-in-20 chance."
        )
    failed = f"failed documents: base {base.error_count}, candidate {candidate.error_count}"
    if same_docs is False:
        warnings.append(
            f"Different document sets (documents_fingerprint): the pairing is partial, {paired} documents pair "
            f"({len(only_base)} only in the base, {len(only_candidate)} only in the candidate; {failed}); the verdict "
            "speaks for those only."
        )
    elif only_base or only_candidate:
        warnings.append(
            f"{len(only_base)} documents scored only in the base and {len(only_candidate)} only in the candidate are "
            f"left out of the pairing ({failed})."
        )
    return warnings


def _field_verdicts(found: Comparison, k: int) -> list[FieldChange] | None:
    if not found.field_scores:
        return None
    by_field: dict[str, list[float]] = {}
    for scores in found.field_scores.values():
        for path, (before, after) in scores.items():
            by_field.setdefault(path, []).append(round(after - before, 4))
    return [
        FieldChange(
            path=clip(v.path, NAME_MAX),
            paired_documents=v.n,
            mean_delta=round(v.mean, 4),
            p_value=keep_side(v.p_value, verdicts.ALPHA),
            adjusted_p_value=keep_side(v.adjusted_p_value, verdicts.ALPHA),
            verdict=v.verdict,
        )
        for v in verdicts.field_verdicts(by_field, candidate_index=k)
    ]


def _same(a: str | None, b: str | None) -> bool | None:
    return None if a is None or b is None else a == b


def _run_score(run: Run) -> float | None:
    return run.score if run.status == statuses.COMPLETED else None


def _scores(metrics: Metrics | None) -> dict[str, tuple[str | None, float]]:
    if metrics is None or metrics.kind != "summary":
        return {}
    return {d.id: (d.filename, d.score) for d in metrics.documents if d.score is not None}


def paired_documents(found: Comparison) -> list[str]:
    """The ids of the documents both runs scored, in the base's order: the ones to read field by field."""
    return [pair.document_id for pair in _pairs(found)]


def _pairs(found: Comparison) -> list[DocumentDelta]:
    base, candidate = _scores(found.base_metrics), _scores(found.candidate_metrics)
    return [
        DocumentDelta(
            document_id=doc,
            filename=clip(name, NAME_MAX) if name else None,
            base=score,
            candidate=candidate[doc][1],
            delta=round(candidate[doc][1] - score, 4),
        )
        for doc, (name, score) in base.items()
        if doc in candidate
    ]


def _fields_moved(found: Comparison, pairs: list[DocumentDelta]) -> list[FieldDelta]:
    names_of = {pair.document_id: pair.filename for pair in pairs}
    moved = [
        FieldDelta(
            path=clip(path, NAME_MAX),
            document_id=document_id,
            filename=names_of.get(document_id),
            base=before,
            candidate=after,
            delta=round(after - before, 4),
        )
        for document_id, scores in found.field_scores.items()
        for path, (before, after) in scores.items()
    ]
    return sorted(moved, key=lambda f: (-abs(f.delta), f.path, f.document_id))[:FIELDS_MOVED_SHOWN]


def _hint(report: ComparisonReport) -> str:
    if report.verdict == NO_VERDICT:
        return "No verdict: why_no_verdict says what would give one."
    same_base = f"base_run_id='{report.base_run_id}'"
    if report.same_configuration and report.same_documents:
        return (
            "Same block configuration and documents: the difference is run-to-run noise; its sd is the noise "
            "level a real change must beat."
        )
    if report.verdict == "regressed":
        return f"Worse beyond noise: revert it; why: {names.TRIAGE}(run_id='{report.candidate_run_id}')."
    if report.verdict == "improved":
        return f"Better beyond noise: keep it; compare the next edit with base_run_id='{report.candidate_run_id}'."
    if report.reading == "no change":
        return f"No change beyond ±{verdicts.NEGLIGIBLE}: try another edit against the same base ({same_base})."
    needed = f" (about {report.documents_needed} to catch {verdicts.NEGLIGIBLE})" if report.documents_needed else ""
    return (
        f"Add documents{needed} or accept missing changes under {_num(report.min_detectable_shift)}; compare "
        f"further edits with {same_base} so the tries are counted."
    )


# Numbers as shown: rounding never moves an interval's end across 0, or a p-value across its level


def keep_sign(value: float | None, places: int = 4) -> float | None:
    if value is None:
        return None
    rounded = round(value, places)
    return rounded if (rounded > 0) == (value > 0) and (rounded < 0) == (value < 0) else float(f"{value:.2g}")


def keep_side(p: float, level: float) -> float:
    """p to 3 significant digits, unless that would move it across `level`."""
    rounded = float(f"{p:.3g}")
    return rounded if (rounded < level) == (p < level) else p


def signed_text(value: float | None) -> str:
    if value is None:
        return "?"
    text = f"{value:+.3f}"
    shown = float(text)
    return text if (shown > 0) == (value > 0) and (shown < 0) == (value < 0) else f"{value:+.2g}"


def p_text(p: float, level: float) -> str:
    text = f"{p:.3g}"
    return text if (float(text) < level) == (p < level) else f"{p:.6g}"


def level_text(level: float) -> str:
    return f"{level * 100:.4g}%"


def ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def verdict_line(report: ComparisonReport) -> str:
    n = report.paired_documents
    if report.verdict == NO_VERDICT:
        return f"Verdict: no verdict (n={n} paired documents): {report.why_no_verdict}"
    try_text = ""
    if report.candidate_index and report.candidate_index > 1:
        try_text = f"; {ordinal(report.candidate_index)} candidate against this base"
    reading = f": {report.reading}" if report.reading else ""
    return f"Verdict: {report.verdict}{reading} (n={n} paired documents{try_text})."


def interval_line(report: ComparisonReport) -> str | None:
    if report.mean_delta is None or report.verdict == NO_VERDICT:
        return None
    if report.ci_low is None or report.ci_high is None:
        interval = "no interval: no outcome of this many documents reaches the level"
    else:
        level = level_text(report.interval_level or 0.95)
        interval = f"{level} interval [{signed_text(report.ci_low)}, {signed_text(report.ci_high)}]"
    p = f"sign-flip p={p_text(1.0 if report.p_value is None else report.p_value, verdicts.ALPHA)}"
    if report.candidate_index and report.candidate_index > 1 and report.adjusted_p_value is not None:
        factor = verdicts.sequence_factor(report.candidate_index)
        p += (
            f", adjusted p={p_text(report.adjusted_p_value, verdicts.ALPHA)} (x{factor:g} for the "
            f"{ordinal(report.candidate_index)} candidate against this base)"
        )
    return f"Mean per-document delta {signed_text(report.mean_delta)}, {interval}, {p}."


def render_comparison(report: ComparisonReport) -> str:
    lines = [verdict_line(report)]
    ids = f"base {report.base_run_id}, candidate {report.candidate_run_id}"
    if report.score_delta is not None:
        because = f" ({report.score_vs_mean})" if report.score_vs_mean else ""
        lines.append(
            f"Score {_num(report.base_score)} → {_num(report.candidate_score)} ({signed_text(report.score_delta)})"
            f"{because}; {ids}."
        )
    else:
        scores = f"base {_num(report.base_score)}, candidate {_num(report.candidate_score)}"
        lines.append(f"Run scores (of completed runs only): {scores}; {ids}.")
    if report.base_chosen:
        lines.append(f"Base chosen: {report.base_chosen}.")
    if (interval := interval_line(report)) is not None:
        lines.append(interval)
    if report.verdict != NO_VERDICT and report.mean_delta is not None:
        if report.min_detectable_shift is not None:
            needed = (
                f"; catching {verdicts.NEGLIGIBLE} would take about {report.documents_needed} paired documents"
                if report.documents_needed
                else ""
            )
            lines.append(
                f"Smallest change this comparison catches 80% of the time: {report.min_detectable_shift:.3f}{needed}."
            )
        else:
            lines.append("No change of any size could reach the level with this many documents.")
    if report.deltas is not None:
        spread = report.deltas
        lines.append(
            f"Deltas: median {signed_text(spread.median)}, min {signed_text(spread.min)}, max "
            f"{signed_text(spread.max)}, sd {spread.sd:.3f}."
        )
    if report.noise_sd is not None:
        lines.append(f"Same configuration and documents: this is run-to-run noise, sd {report.noise_sd:.3f}.")
    for title, movers in (("Regressed most", report.regressed), ("Improved most", report.improved)):
        if movers:
            shown = "; ".join(
                f"{m.filename or m.document_id} {m.base:.3f}→{m.candidate:.3f} ({signed_text(m.delta)})" for m in movers
            )
            lines.append(f"{title}: {shown}.")
    if report.fields_tested is not None:
        changed = "; ".join(
            f"{f.path} {f.verdict} ({signed_text(f.mean_delta)}, n={f.paired_documents}, adjusted p="
            f"{p_text(f.adjusted_p_value, verdicts.ALPHA)})"
            for f in report.fields_changed
        )
        lines.append(
            f"Fields: {report.fields_tested} tested, Holm-corrected: "
            + (changed if changed else "none changed beyond noise")
            + "."
        )
    if report.fields_moved:
        shown = "; ".join(
            f"{f.path} {signed_text(f.delta)} in {f.filename or f.document_id}" for f in report.fields_moved
        )
        lines.append(f"Single field scores that moved most: {shown}.")
    lines.extend(f"Warning: {w}" for w in report.warnings)
    lines.append(f"Rule: {report.rule}")
    if report.verdict != NO_VERDICT:
        lines.append(f"Next: {report.hint}")
    return "\n".join(lines)


def comparison_result(report: ComparisonReport) -> tuple[str, dict[str, object]]:
    """Text and structured content (every key, null when there is nothing to say) within BUDGET_BYTES:
    movers and fields are cut first, then warnings."""
    for keep in (MOVERS_SHOWN, 2, 1, 0):
        trimmed = report.model_copy(
            update={
                "regressed": report.regressed[:keep],
                "improved": report.improved[:keep],
                "fields_moved": report.fields_moved[: min(keep, FIELDS_MOVED_SHOWN)],
                "fields_changed": report.fields_changed[: keep + 1],
                "only_in_base": report.only_in_base[: keep + 2],
                "only_in_candidate": report.only_in_candidate[: keep + 2],
                "warnings": report.warnings if keep else report.warnings[:2],
            }
        )
        text, data = render_comparison(trimmed), trimmed.model_dump(mode="json")
        if len(text.encode()) + len(json.dumps(data, separators=(",", ":")).encode()) <= BUDGET_BYTES:
            break
    return text, data


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}"
