"""The simulated world of evals: saved evals of a workflow's blocks, and eval runs that replay them.

An eval freezes one block's inputs and checks one assertion on its output. Its verdict in a run is set by
the workflow version the run replays: each version starts from the one before, and a block edit
(`SimulatedRetab.edit_eval_block`) makes a new version in which chosen evals regress, get fixed, or see
the schema move under their assertion (drift: the path no longer resolves, so the eval is blocked). On top
of that, an `llm_judged_as` (or `llm_not_judged_as`) assertion is judged by a model, which flips between
runs of one configuration at the run's `flip_rate`, seeded per (run, eval): the noise a statistical
comparison of two runs must reject.

An eval run unfolds as an experiment run does (`SimEvalRun.state_at`, from the clock): pending, queued,
then its evals one after another, then completed, or error or cancelled part way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from ..clock import Clock
from .scenario import opaque_id
from .workflow_bodies import invoice_of, step_id
from .workflow_world import SimBlock, SimWorkflow, SimWorkflowRun, WorkflowWorld, workflow_run_id

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


# The invoice workflow's evals: what each checks, and how it does in the workflow's first version.


def _invoice_evals(workflow: SimWorkflow, captured: SimWorkflowRun) -> list[SimEval]:
    extract, route = workflow.labelled("Extract invoice"), workflow.labelled("Route document")
    source_step = {
        block.id: step_id(captured, next(i for i, p in enumerate(captured.plan) if p.block is block))
        for block in (extract, route)
    }

    def made(
        role: str, name: str, block: SimBlock, path: str | None, expectation: Expectation, baseline: EvalVerdict
    ) -> SimEval:
        return SimEval(
            id=opaque_id("wfnodeeval", f"{workflow.id}/{role}"),
            role=role,
            name=name,
            workflow=workflow,
            block=block,
            path=path,
            output_handle_id="invoice" if block is route else "output",
            expectation=expectation,
            baseline=baseline,
            created_at=workflow.created_at + timedelta(days=1),
            source={"type": "run_step", "run_id": captured.id, "step_id": source_step[block.id]},
            input_file=captured.document,
        )

    found = invoice_of(captured)
    misread_total = round(found.total / 1.2, 2)  # the edit reads the amount before VAT
    regex = "^[A-Z]{2}[0-9A-Z]{8,12}$"
    vendor = {"kind": "similarity_gte", "reference": found.vendor, "threshold": 0.9, "method": "levenshtein"}
    return [
        made(
            "invoice_number",
            "Invoice number",
            extract,
            "invoice_number",
            _equals(found.number, "INV-2026-0000"),
            "passed",
        ),
        made("total", "Total", extract, "total", _compare(found.total, misread_total), "passed"),
        made(
            "vat_format",
            "VAT id format",
            extract,
            "vendor.vat_id",
            Expectation({"kind": "matches_regex", "pattern": regex}, regex, "FR12345678901", "FR 12 345"),
            "failed",
        ),
        made(
            "vendor_name",
            "Vendor name",
            extract,
            "vendor.name",
            Expectation(vendor, found.vendor, found.vendor, "ACME Corp.", 0.9, 1.0, 0.62, "levenshtein"),
            "passed",
        ),
        made("invoice_date", "Invoice date present", extract, "date", _exists("2026-11-20"), "passed"),
        made("purchase_order", "Purchase order", extract, "purchase_order", _equals("PO-88231", "PO-88213"), "blocked"),
        made("currency", "Currency", extract, "currency", _equals("EUR", "USD"), "passed"),
        made("routed", "Routed as an invoice", route, None, _exists(captured.document[1]), "passed"),
        made(
            "line_count",
            "At least one line",
            extract,
            "line_items",
            Expectation({"kind": "length_compare", "op": "gte", "expected": 1}, 1, len(found.lines), 0),
            "passed",
        ),
        made(
            "total_in_range",
            "Total in range",
            extract,
            "total",
            Expectation({"kind": "between", "lower": 0, "upper": 100000}, [0, 100000], found.total, -found.total),
            "passed",
        ),
        made(
            "line_amounts",
            "Line amounts add up",
            extract,
            "line_items",
            _judged("llm_judged_as", "Every line's amount is its quantity times its unit price", 0.91, 0.28),
            "passed",
        ),
        made(
            "no_personal_data",
            "No personal data",
            extract,
            None,
            _judged("llm_not_judged_as", "The output names a private person or a home address", 0.88, 0.74),
            "failed",
        ),
    ]


def _equals(expected: Any, wrong: Any) -> Expectation:
    return Expectation({"kind": "equals", "expected": expected}, expected, expected, wrong)


def _compare(expected: float, wrong: float) -> Expectation:
    return Expectation({"kind": "number_compare", "op": "eq", "expected": expected}, expected, expected, wrong)


def _exists(present: Any) -> Expectation:
    return Expectation({"kind": "exists"}, None, present, None)


def _judged(kind: str, rubric: str, passing_score: float, failing_score: float) -> Expectation:
    """A model judges the output against `rubric` and answers a label; "yes" is the one expected (for
    `llm_not_judged_as`, the one to avoid). The score is the judge's confidence in the label it gave."""
    wanted, other = ("yes", "no") if kind == "llm_judged_as" else ("no", "yes")
    condition = {"kind": kind, "rubric": rubric, "expected_label": "yes"}
    return Expectation(condition, "yes", wanted, other, 0.5, passing_score, failing_score, "llm_judge")


def _support_workflow(epoch: datetime) -> SimWorkflow:
    workflow_id = opaque_id("workflow", "wf-support-replies")
    return SimWorkflow(
        id=workflow_id,
        name="support-replies",
        created_at=epoch,
        blocks=[
            SimBlock(opaque_id("block", f"{workflow_id}/Ticket"), "start_json", "Ticket", weight=0.1),
            SimBlock(opaque_id("block", f"{workflow_id}/Draft reply"), "extract", "Draft reply", model="retab-large"),
        ],
    )


def _support_evals(workflow: SimWorkflow, count: int = 30) -> list[SimEval]:
    """One judged eval per frozen ticket, a sixth of them failing in the first version."""
    draft = workflow.labelled("Draft reply")
    rubric = "The reply answers the customer's question and proposes a next step"
    rng = random.Random("support-baseline")
    evals: list[SimEval] = []
    for i in range(count):
        ticket = {"subject": f"Ticket {i + 1:02d}", "body": f"Question {i + 1} about my order"}
        evals.append(
            SimEval(
                id=opaque_id("wfnodeeval", f"{workflow.id}/reply-{i}"),
                role=f"reply_{i + 1:02d}",
                name=f"Reply to ticket {i + 1:02d}",
                workflow=workflow,
                block=draft,
                path="reply",
                output_handle_id="output",
                expectation=_judged(
                    "llm_judged_as", rubric, round(rng.uniform(0.7, 0.97), 2), round(rng.uniform(0.1, 0.45), 2)
                ),
                baseline="failed" if i % 6 == 5 else "passed",
                created_at=workflow.created_at + timedelta(days=2),
                source={"type": "manual", "handle_inputs": {"ticket": {"type": "json", "data": ticket}}},
            )
        )
    return evals


EVAL_RUN_ROLES = ("base", "candidate", "failed", "cancelled", "running", "noisy_base", "noisy_candidate")


def seed_eval_world(clock: Clock, workflows: WorkflowWorld, *, demo: bool = False) -> EvalWorld:
    """The standard scenario of eval runs (ids opaque, as Retab's are).

    The invoice workflow's 12 evals: `base` (yesterday, version 1) and `candidate` (an hour ago, version 2,
    after a block edit 3.5 hours ago) pair up by eval: `total` and `line_amounts` regress (passed ->
    failed), `vat_format` is fixed (failed -> passed), `purchase_order` is blocked in both (its path does
    not resolve), `no_personal_data` fails in both. Ten minutes ago another edit renamed the schema field
    under `currency`: that eval has drifted and is stale, and is blocked in runs of version 3 (`running`,
    started now). `failed` and `cancelled` stopped part way. The support workflow's 30 judged evals ran
    twice in one configuration (`noisy_base`, `noisy_candidate`) with a 10 % flip rate: every discordant
    pair there is noise.
    """
    now_t, hour = clock.now(), 3600.0
    invoices = workflows.workflows[0]
    captured = workflows.run(workflow_run_id("completed"))
    assert captured is not None
    suite = EvalSuite(invoices, _invoice_evals(invoices, captured))
    support_workflow = _support_workflow(invoices.created_at)
    workflows.workflows.append(support_workflow)
    support = EvalSuite(support_workflow, _support_evals(support_workflow), flip_rate=0.1)
    world = EvalWorld(suites=[suite, support], runs=[])
    role = {e.role: e.id for e in suite.evals}
    edited = {role["total"]: "failed", role["line_amounts"]: "failed", role["vat_format"]: "passed"}
    world.edit(suite, now_t - 3.5 * hour, cast(dict[str, EvalVerdict], edited))
    renamed = "The block's schema renamed currency to currency_code; the assertion still reads currency"
    world.edit(suite, now_t - 600, {}, {role["currency"]: renamed})
    for run in workflows.runs:  # the workflow runs replayed the version of their time
        run.version = invoices.version_at(run.created_t)

    def add(role_name: str, of: EvalSuite, ago_s: float, duration_s: float, **shape: Any) -> SimEvalRun:
        created_t = now_t - ago_s
        run = SimEvalRun(
            id=eval_run_id(role_name),
            suite=of,
            version=of.workflow.version_at(created_t),
            evals=list(of.evals),
            scope={"type": "workflow"},
            created_t=created_t,
            duration_s=duration_s,
            **shape,
        )
        world.runs.append(run)
        return run

    add("noisy_base", support, 50 * hour, 120, flip_rate=0.1, trigger_type="schedule")
    add("base", suite, 26 * hour, 90, trigger_type="api")
    add("noisy_candidate", support, 25 * hour, 120, flip_rate=0.1, trigger_type="schedule")
    unavailable = "Block 'Extract invoice' could not run: the model provider answered 503 three times"
    add(
        "failed",
        suite,
        5 * hour,
        90,
        outcome="error",
        end_fraction=0.4,
        error_code="MODEL_UNAVAILABLE",
        error_message=unavailable,
    )
    cancelled = add("cancelled", suite, 4 * hour, 90)
    cancelled.cancel_requested_t = cancelled.created_t + 30
    cancelled.cancel_reason = "Cancelled by user from the dashboard"
    add("candidate", suite, hour, 90, trigger_type="api")
    add("running", suite, 0, 12 if demo else 40, trigger_type="api")
    return world
