"""The simulated world of workflow runs: workflows, their blocks, runs that unfold step by step, review gates.

A run is a plan (one planned step per block execution; a `for_each` gives one per iteration), a creation
time and a queue time; where it stands at any moment is computed from the clock, as for experiment runs,
so the same definition serves a virtual clock in tests and the real one in the demo. A step whose block
has a review gate pauses the run (`awaiting_review`) until `decide_review` records a person's verdict; a
failing step ends the run in `error`; a cancel ends it in `cancelled`.

What a rejection does: Retab's SDK says of approve and reject alike "... and resume the workflow run", and
the cut spec has no failed or rejected run status, so here a rejected review resumes the run, the gated
step completes (its output is what the reviewer rejected), every later step is `skipped` with the reason,
and the run ends `completed`. A consumer must read the review's decision to tell it from an approval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from ..base.clock import Clock
from .scenario import opaque_id

Verdict = Literal["approved", "rejected"]

# Artifact id prefixes by operation. Retab derives an artifact's kind from its id's prefix; `extr` and
# `clss` are the spec's own examples, the others are ours.
ARTIFACT_PREFIXES = {
    "extraction": "extr",
    "classification": "clss",
    "parse": "prs",
    "function_invocation": "fninv",
}
OPERATION_BY_PREFIX = {prefix: operation for operation, prefix in ARTIFACT_PREFIXES.items()}
ARTIFACT_OF_BLOCK = {
    "parse": "parse",
    "classifier": "classification",
    "extract": "extraction",
    "function": "function_invocation",
}


@dataclass(frozen=True)
class SimBlock:
    id: str
    type: str  # the spec's block_type: start_document, parse, classifier, extract, for_each, function, ...
    label: str
    model: str | None = None
    weight: float = 1.0  # its share of a run's time, relative to the other blocks
    inside: str | None = None  # the id of the for_each block it runs in, once per item
    review_threshold: float | None = None  # a review gate: `confidence_lt` this likelihood


@dataclass
class SimWorkflow:
    id: str
    name: str
    blocks: list[SimBlock]
    created_at: datetime
    # When each block edit (eval_world.py) made a new version: version 1 is the first, then one per edit.
    edits_t: list[float] = field(default_factory=list[float])

    @property
    def version(self) -> int:
        return 1 + len(self.edits_t)

    def version_at(self, t: float) -> int:
        return 1 + sum(1 for edit_t in self.edits_t if edit_t <= t)

    def version_id(self, version: int | None = None) -> str:
        return opaque_id("ver", f"{self.id}/{self.version if version is None else version}")

    def labelled(self, label: str) -> SimBlock:
        return next(b for b in self.blocks if b.label == label)


@dataclass(frozen=True)
class PlannedStep:
    block: SimBlock
    duration_s: float
    iteration: int | None = None  # inside a for_each: which item
    gated: bool = False  # its review gate fires in this run
    fails: bool = False  # this step fails, and the run with it


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    t: float
    reason: str | None
    reviewer: str


@dataclass
class SimWorkflowRun:
    id: str
    workflow: SimWorkflow
    version: int
    created_t: float
    plan: list[PlannedStep]
    document: tuple[str, str]  # (file id, filename) given to the start_document block
    queue_s: float = 1.0
    trigger_type: str = "api"
    metadata: dict[str, str] | None = None
    decisions: dict[int, Decision] = field(default_factory=dict[int, Decision])  # by the gated step's index
    cancel_requested_t: float | None = None
    cancel_reason: str | None = None

    @property
    def start_t(self) -> float:
        return self.created_t + self.queue_s

    @property
    def fails(self) -> bool:
        """Whether a step of this run fails (its totals check: the line items do not add up)."""
        return any(step.fails for step in self.plan)

    @property
    def line_items(self) -> int:
        return sum(1 for step in self.plan if step.iteration is not None)

    def spans(self, t: float) -> list[StepSpan]:
        """The steps that exist at clock time `t` (a step exists from its start), in order."""
        spans: list[StepSpan] = []
        cursor = self.start_t
        rejected = False
        for index, step in enumerate(self.plan):
            if cursor > t or (self.cancel_requested_t is not None and cursor > self.cancel_requested_t):
                break
            if rejected:
                spans.append(StepSpan(index, step, cursor, cursor, cursor, "skipped"))
                continue
            executed = cursor + step.duration_s
            if step.fails:
                spans.append(StepSpan(index, step, cursor, executed, executed, "error"))
                break
            decision = self.decisions.get(index)
            if step.gated and (decision is None or decision.t > t):
                spans.append(StepSpan(index, step, cursor, executed, None, "completed"))
                break
            done = max(executed, decision.t) if step.gated and decision is not None else executed
            spans.append(StepSpan(index, step, cursor, executed, done, "completed"))
            cursor = done
            rejected = decision is not None and decision.verdict == "rejected"
        return spans

    def status_at(self, t: float) -> tuple[str, float | None]:
        """(lifecycle status, clock time it ended or None) at clock time `t`."""
        if self.cancel_requested_t is not None and t >= self.cancel_requested_t:
            return "cancelled", self.cancel_requested_t
        if t < self.start_t:
            return "pending", None
        spans = self.spans(t)
        last = spans[-1] if spans else None
        if last is not None and last.status == "error" and last.executed_t <= t:
            return "error", last.executed_t
        if any(span.awaiting_at(t) for span in spans):
            return "awaiting_review", None
        if len(spans) == len(self.plan) and last is not None and last.done_t is not None and last.done_t <= t:
            return "completed", last.done_t
        return "running", None

    def step_status_at(self, span: StepSpan, t: float) -> str:
        cancel_t = self.cancel_requested_t
        if cancel_t is not None and cancel_t <= t and (span.done_t is None or span.done_t > cancel_t):
            return "cancelled"
        if t < span.executed_t:
            return "running"
        if span.awaiting_at(t):
            return "awaiting_review"
        return span.status

    def waiting_for(self, t: float) -> list[SimBlock]:
        """The gated blocks whose review is open at `t`."""
        return [span.step.block for span in self.spans(t) if span.awaiting_at(t)]

    def gated_spans(self, t: float) -> list[StepSpan]:
        """The steps whose review gate fired by `t`: each has a review from then on."""
        return [span for span in self.spans(t) if span.step.gated and span.executed_t <= t]


@dataclass(frozen=True)
class StepSpan:
    """Where one step sits in time: started, done executing, done (None while its review is open)."""

    index: int
    step: PlannedStep
    start_t: float
    executed_t: float
    done_t: float | None
    status: str  # how it ends: completed, error or skipped

    def awaiting_at(self, t: float) -> bool:
        return self.step.gated and self.executed_t <= t and (self.done_t is None or self.done_t > t)


@dataclass
class WorkflowWorld:
    workflows: list[SimWorkflow]
    runs: list[SimWorkflowRun]

    def workflow(self, workflow_id: str) -> SimWorkflow | None:
        return next((w for w in self.workflows if w.id == workflow_id), None)

    def run(self, run_id: str) -> SimWorkflowRun | None:
        return next((r for r in self.runs if r.id == run_id), None)


def invoice_workflow(epoch: datetime) -> SimWorkflow:
    """Invoices in, through parse, classify, extract (reviewed when the extraction is unsure), then each
    line item normalised in a loop, then a check that the lines add up to the total."""
    workflow_id = opaque_id("workflow", "wf-invoice-intake")

    def block_id(label: str) -> str:
        return opaque_id("block", f"{workflow_id}/{label}")

    each = block_id("Each line item")

    return SimWorkflow(
        id=workflow_id,
        name="invoice-intake",
        created_at=epoch,
        blocks=[
            SimBlock(block_id("Invoice"), "start_document", "Invoice", weight=0.2),
            SimBlock(block_id("Read invoice"), "parse", "Read invoice", model="retab-small", weight=4.0),
            SimBlock(block_id("Route document"), "classifier", "Route document", model="retab-small", weight=3.0),
            SimBlock(
                block_id("Extract invoice"),
                "extract",
                "Extract invoice",
                model="retab-large",
                weight=12.0,
                review_threshold=0.8,
            ),
            SimBlock(block_id("Each line item"), "for_each", "Each line item", weight=0.3),
            SimBlock(block_id("Normalise line"), "function", "Normalise line", weight=1.5, inside=each),
            SimBlock(block_id("Check totals"), "function", "Check totals", weight=1.0),
        ],
    )


def plan_run(
    workflow: SimWorkflow, *, total_s: float, line_items: int, gated: bool = False, fails: bool = False
) -> list[PlannedStep]:
    """One step per block execution, the loop's body once per item, `total_s` of work in all (review
    waits not counted). `gated`: the extraction is unsure, so its review gate fires; `fails`: the last
    block fails."""
    executions: list[tuple[SimBlock, int | None]] = []
    for block in workflow.blocks:
        if block.inside is None:
            executions.append((block, None))
        else:
            executions.extend((block, i) for i in range(line_items))
    weight = sum(block.weight for block, _ in executions)
    last = len(executions) - 1
    return [
        PlannedStep(
            block=block,
            duration_s=total_s * block.weight / weight,
            iteration=iteration,
            gated=gated and block.review_threshold is not None,
            fails=fails and index == last,
        )
        for index, (block, iteration) in enumerate(executions)
    ]


WORKFLOW_RUN_ROLES = ("completed", "awaiting_review", "failed", "running", "cancelled", "rejected")
REVIEW_ROLES = {"pending": "awaiting_review", "approved": "completed", "rejected": "rejected"}  # -> run role


def workflow_run_id(role: str) -> str:
    """The id of the seeded workflow run with this role (seeded apart from the experiment runs' roles,
    which share some names)."""
    return opaque_id("run", f"workflow-run-{role}")


def seed_workflow_world(clock: Clock, *, demo: bool = False) -> WorkflowWorld:
    """The standard scenario of the invoice-intake workflow (ids are opaque, as Retab's are):
    - `completed`: two hours ago, its extraction reviewed and approved five minutes after the gate opened;
    - `rejected`: yesterday, its review rejected, so the steps after the gate were skipped;
    - `failed`: an hour ago, failed at the last step (the line items do not add up to the total);
    - `cancelled`: three hours ago, cancelled from the dashboard 20 s in;
    - `awaiting_review`: five minutes ago, paused at the review gate since (`decide_review` resumes it);
    - `running`: started now, 40 s of steps (12 s in demo mode, so a walkthrough ends quickly).
    """
    now_t = clock.now()
    workflow = invoice_workflow(clock.wall_at(now_t) - timedelta(days=30))
    world = WorkflowWorld(workflows=[workflow], runs=[])

    def add(role: str, ago_s: float, total_s: float, items: int, trigger: str, **plan: bool) -> SimWorkflowRun:
        run_id = workflow_run_id(role)
        run = SimWorkflowRun(
            id=run_id,
            workflow=workflow,
            version=workflow.version,
            created_t=now_t - ago_s,
            plan=plan_run(workflow, total_s=total_s, line_items=items, **plan),
            document=(opaque_id("file", run_id), f"invoice-{role.replace('_', '-')}.pdf"),
            queue_s=2.0,
            trigger_type=trigger,
            metadata={"tenant": "acme", "source": trigger},
        )
        world.runs.append(run)
        return run

    def decide(run: SimWorkflowRun, verdict: Verdict, after_s: float, reason: str | None = None) -> None:
        gate = run.spans(math.inf)[-1]  # undecided, the run stops at its gate
        run.decisions[gate.index] = Decision(verdict, gate.executed_t + after_s, reason, "Dana Moreau")

    decide(add("rejected", 26 * 3600, 45, 3, "api", gated=True), "rejected", 1800, "VAT id belongs to another supplier")
    cancelled = add("cancelled", 3 * 3600, 60, 4, "schedule")
    cancelled.cancel_requested_t = cancelled.created_t + 20
    cancelled.cancel_reason = "Cancelled by user from the dashboard"
    decide(add("completed", 2 * 3600, 48, 4, "api", gated=True), "approved", 300)
    add("failed", 3600, 30, 3, "webhook", fails=True)
    add("awaiting_review", 300, 40, 3, "email", gated=True)
    add("running", 0, 12 if demo else 40, 5, "manual")
    return world
