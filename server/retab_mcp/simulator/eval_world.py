"""The simulated world of evals: saved evals of a workflow's blocks, and eval runs that replay them.

An eval freezes one block's inputs and checks one assertion on its output. Its verdict in a run is set by
the workflow version the run replays: each version starts from the one before, and a block edit
(`SimulatedRetab.edit_eval_block`) makes a new version in which chosen evals regress, get fixed, or see
the schema move under their assertion (drift: the path no longer resolves, so the eval is blocked). On top
of that, an `llm_judged_as` (or `llm_not_judged_as`) assertion is judged by a model, which flips between
runs of one configuration at the run's `flip_rate`, seeded per (run, eval): the noise a statistical
comparison of two runs must reject.

An eval run unfolds as an experiment run does (`SimEvalRun.state_at`, from the clock): pending, queued,
then its evals one after another, then completed, or error or cancelled part way. The seeded evals and
runs are in eval_scenario.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .scenario import opaque_id
from .workflow_world import SimBlock, SimWorkflow

EvalVerdict = Literal["passed", "failed", "blocked"]
RunOutcome = Literal["completed", "error", "cancelled", "never"]
JUDGED = ("llm_judged_as", "llm_not_judged_as")  # assertions a model decides, which flip now and then


@dataclass(frozen=True)
class Expectation:
    """What an eval's assertion checks, and what the block's output gives when it passes or fails."""

    condition: dict[str, Any]  # the spec's condition object, `kind` included
    expected: Any
    passing: Any
    failing: Any
    threshold: float | None = None  # for the kinds that score: the score to reach
    passing_score: float | None = None
    failing_score: float | None = None
    metric_kind: str | None = None

    @property
    def kind(self) -> str:
        return str(self.condition["kind"])


@dataclass
class SimEval:
    id: str
    role: str  # its name in the scenario (`SimulatedRetab.eval_ids`)
    name: str
    workflow: SimWorkflow
    block: SimBlock
    path: str | None
    output_handle_id: str
    expectation: Expectation
    baseline: EvalVerdict  # in the workflow's first version
    created_at: datetime
    source: dict[str, Any]  # the spec's source: manual inputs, or a step of a workflow run captured
    input_file: tuple[str, str] | None = None  # (file id, filename) its frozen inputs hold, if a file

    @property
    def assertion_id(self) -> str:
        return opaque_id("assert", self.id)


@dataclass(frozen=True)
class EvalEdit:
    """A block edit: the workflow version it made, and what it changed for which evals.

    An edit of a block's behaviour (prompt, model: `verdicts`) may change any output of the block, so the
    latest verdicts of all its evals stop applying (stale). A schema edit that moves a field from under
    an assertion (`drifts`) is found by Retab's schema-dependency check, which staleness follows: only
    the evals that read that field go stale.
    """

    version: int
    blocks: frozenset[str]  # whose configuration changed (block execution fingerprints change)
    revalidates: frozenset[str]  # the evals whose latest verdicts no longer apply
    verdicts: dict[str, EvalVerdict]  # eval id -> its verdict from this version on
    drifts: dict[str, str]  # eval id -> how the schema moved under its assertion


@dataclass
class EvalSuite:
    """The evals of one workflow, and the edits that made its versions."""

    workflow: SimWorkflow
    evals: list[SimEval]
    flip_rate: float = 0.0  # of judged assertions, for runs created by POST
    edits: list[EvalEdit] = field(default_factory=list[EvalEdit])

    def eval(self, eval_id: str) -> SimEval | None:
        return next((e for e in self.evals if e.id == eval_id), None)

    def verdict(self, e: SimEval, version: int) -> EvalVerdict:
        verdict = e.baseline
        for edit in self.edits:
            if edit.version <= version:
                verdict = edit.verdicts.get(e.id, verdict)
        return "blocked" if self.drift(e, version) else verdict

    def drift(self, e: SimEval, version: int) -> str | None:
        """How the schema moved under `e`'s assertion by `version`, if it did."""
        found = [edit.drifts[e.id] for edit in self.edits if edit.version <= version and e.id in edit.drifts]
        return found[-1] if found else None

    def block_config(self, block_id: str, version: int) -> int:
        """How many edits changed the block by `version`: equal numbers, equal configurations."""
        return sum(1 for edit in self.edits if edit.version <= version and block_id in edit.blocks)

    def validity(self, e: SimEval, version: int) -> int:
        """How many edits by `version` made `e`'s verdicts stop applying: equal numbers, comparable
        verdicts."""
        return sum(1 for edit in self.edits if edit.version <= version and e.id in edit.revalidates)


@dataclass
class SimEvalRun:
    id: str
    suite: EvalSuite
    version: int
    evals: list[SimEval]  # in the order they run
    scope: dict[str, Any]  # the spec's scope: workflow, block or single
    created_t: float
    queue_s: float = 2.0
    duration_s: float = 30.0
    flip_rate: float = 0.0
    trigger_type: str = "manual"
    outcome: RunOutcome = "completed"
    end_fraction: float = 1.0  # where an error strikes, as a fraction of the evals
    error_message: str = "Eval run failed"
    error_code: str | None = None
    cancel_requested_t: float | None = None
    cancel_reason: str | None = None

    @property
    def total(self) -> int:
        return len(self.evals)

    def _end_t(self) -> float:
        return self.created_t + self.queue_s + self.duration_s * self.end_fraction

    def state_at(self, t: float) -> tuple[str, int]:
        """(status, evals done) at clock time `t`, as an experiment run's (SimRun.state_at)."""
        if self.cancel_requested_t is not None and t >= self.cancel_requested_t:
            return "cancelled", self._done_at(self.cancel_requested_t)
        age = t - self.created_t
        if age < self.queue_s / 2:
            return "pending", 0
        if age < self.queue_s:
            return "queued", 0
        if self.outcome == "never" or t < self._end_t():
            return "running", self._done_at(t)
        return self.outcome, self._done_at(self._end_t())

    def _done_at(self, t: float) -> int:
        running = max(0.0, t - self.created_t - self.queue_s)
        return min(self.total, int(self.total * min(running / self.duration_s, self.end_fraction) + 1e-9))

    def ended_t(self, t: float) -> float | None:
        status, _ = self.state_at(t)
        if status == "cancelled" and self.cancel_requested_t is not None:
            return min(self.cancel_requested_t, self._end_t())
        return self._end_t() if status in ("completed", "error", "cancelled") else None

    def eval_span(self, index: int) -> tuple[float, float]:
        """(start, end) clock times of eval `index`: each takes between 0.5 and 1 of its share of the run."""
        share = self.duration_s / max(1, self.total)
        end = self.created_t + self.queue_s + share * (index + 1)
        spent = share * (0.5 + 0.5 * random.Random(f"{self.id}/{self.evals[index].id}/t").random())
        return end - spent, end

    def verdict(self, e: SimEval) -> EvalVerdict:
        """`e`'s verdict in this run: its workflow version's, unless the judge flipped (judged kinds)."""
        verdict = self.suite.verdict(e, self.version)
        flipped = random.Random(f"{e.id}/{self.id}/judge").random() < self.flip_rate  # seeded per (eval, run)
        if verdict == "blocked" or e.expectation.kind not in JUDGED or not flipped:
            return verdict
        return "failed" if verdict == "passed" else "passed"


@dataclass
class EvalWorld:
    suites: list[EvalSuite]
    runs: list[SimEvalRun]

    def suite(self, workflow_id: str) -> EvalSuite | None:
        return next((s for s in self.suites if s.workflow.id == workflow_id), None)

    def run(self, run_id: str) -> SimEvalRun | None:
        return next((r for r in self.runs if r.id == run_id), None)

    def eval(self, eval_id: str) -> SimEval | None:
        return next((e for s in self.suites for e in s.evals if e.id == eval_id), None)

    def edit(
        self, suite: EvalSuite, t: float, verdicts: dict[str, EvalVerdict], drifts: dict[str, str] | None = None
    ) -> int:
        """A block edit at clock time `t` of the blocks of the evals named: a new workflow version."""
        drifts = drifts or {}
        blocks = frozenset(e.block.id for e in suite.evals if e.id in verdicts or e.id in drifts)
        behaviour = {e.block.id for e in suite.evals if e.id in verdicts}
        revalidates = frozenset(e.id for e in suite.evals if e.block.id in behaviour or e.id in drifts)
        suite.workflow.edits_t.append(t)
        version = suite.workflow.version
        suite.edits.append(EvalEdit(version, blocks, revalidates, verdicts, drifts))
        return version


def eval_run_id(role: str) -> str:
    return opaque_id("wfevalrun", f"eval-run-{role}")


def scoped_evals(suite: EvalSuite, scope: dict[str, Any]) -> list[SimEval]:
    if scope.get("type") == "single":
        return [e for e in suite.evals if e.id == scope.get("eval_id")]
    if scope.get("type") == "block":
        return [e for e in suite.evals if e.block.id == scope.get("block_id")]
    return list(suite.evals)
