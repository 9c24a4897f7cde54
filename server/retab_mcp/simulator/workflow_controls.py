"""Controls that shape the world of workflow runs and eval runs, for tests, benchmarks and the demo.

`SimulatedRetab` takes them in as a base class. Seeded ids by role: `workflow_run_ids`, `review_ids`,
`eval_run_ids`, `eval_ids`, `workflow_ids`. Controls: `decide_review(...)` (what a person does in Retab's
dashboard, which the cut spec cannot do), `add_workflow_run(...)`, `add_eval_run(...)` (runs of an
unchanged configuration whose judged assertions flip at `flip_rate`), `edit_eval_block(...)` (a block
edit that makes chosen evals regress, get fixed, or drift).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..base.clock import Clock
from .eval_scenario import EVAL_RUN_ROLES
from .eval_world import EvalSuite, EvalVerdict, EvalWorld, SimEvalRun, eval_run_id, scoped_evals
from .scenario import opaque_id
from .workflow_bodies import review_id as review_id_of
from .workflow_world import (
    REVIEW_ROLES,
    WORKFLOW_RUN_ROLES,
    Decision,
    SimWorkflowRun,
    Verdict,
    WorkflowWorld,
    plan_run,
    workflow_run_id,
)


class ReviewNotPendingError(ValueError):
    """`decide_review` on a review already decided, or whose run was cancelled."""


class WorkflowControls:
    # Provided by SimulatedRetab.
    clock: Clock
    workflow_world: WorkflowWorld
    eval_world: EvalWorld

    @property
    def workflow_ids(self) -> dict[str, str]:
        """The seeded workflows: 'invoices' (runs, reviews and 12 evals), 'support' (30 judged evals)."""
        return {"invoices": self.workflow_world.workflows[0].id, "support": self.workflow_world.workflows[1].id}

    @property
    def workflow_run_ids(self) -> dict[str, str]:
        """Seeded workflow runs by role: completed, rejected, failed, cancelled, awaiting_review, running."""
        return {role: workflow_run_id(role) for role in WORKFLOW_RUN_ROLES}

    @property
    def review_ids(self) -> dict[str, str]:
        """Seeded reviews by role: 'pending' (of the awaiting_review run), 'approved', 'rejected'."""
        found: dict[str, str] = {}
        for role, run_role in REVIEW_ROLES.items():
            run = self.workflow_world.run(workflow_run_id(run_role))
            assert run is not None
            gate = next(i for i, step in enumerate(run.plan) if step.gated)
            found[role] = review_id_of(run, gate)
        return found

    @property
    def eval_run_ids(self) -> dict[str, str]:
        """Seeded eval runs by role: base, candidate, failed, cancelled, running (the invoice workflow's),
        noisy_base, noisy_candidate (the support workflow's, one configuration, judges that flip)."""
        return {role: eval_run_id(role) for role in EVAL_RUN_ROLES}

    @property
    def eval_ids(self) -> dict[str, str]:
        """The invoice workflow's evals by role. Between the base and candidate runs `total` and
        `line_amounts` regress, `vat_format` is fixed; `purchase_order` is blocked; `currency` drifted."""
        return {e.role: e.id for e in self.eval_world.suites[0].evals}

    def decide_review(self, review_id: str, verdict: Verdict, *, reason: str | None = None) -> None:
        """A person decides a pending review in Retab's dashboard, now. The cut spec has no way to do it
        (Retab's full API has approve and reject calls, with a version id). Either verdict resumes the run
        at once: approved, the rest of its steps run and it completes; rejected, the rest are skipped and
        it completes (workflow_world.py says why)."""
        now = self.clock.now()
        for run in self.workflow_world.runs:
            for span in run.gated_spans(now):
                if review_id_of(run, span.index) != review_id:
                    continue
                if span.index in run.decisions or run.status_at(now)[0] == "cancelled":
                    raise ReviewNotPendingError(review_id)
                run.decisions[span.index] = Decision(verdict, now, reason, "Dana Moreau")
                return
        raise KeyError(review_id)

    def add_workflow_run(
        self,
        *,
        duration_s: float = 30.0,
        queue_s: float = 1.0,
        line_items: int = 3,
        review_gate: bool = False,
        fails: bool = False,
        trigger_type: str = "api",
    ) -> str:
        """A run of the invoice workflow that starts now and has `duration_s` of steps: stopping at its
        review gate (`review_gate`) until `decide_review`, or failing at its last step (`fails`)."""
        world = self.workflow_world
        workflow = world.workflows[0]
        run_id = opaque_id("run", f"added-{len(world.runs)}")
        world.runs.append(
            SimWorkflowRun(
                id=run_id,
                workflow=workflow,
                version=workflow.version,
                created_t=self.clock.now(),
                plan=plan_run(workflow, total_s=duration_s, line_items=line_items, gated=review_gate, fails=fails),
                document=(opaque_id("file", run_id), f"invoice-{len(world.runs)}.pdf"),
                queue_s=queue_s,
                trigger_type=trigger_type,
            )
        )
        return run_id

    def add_eval_run(
        self,
        workflow_id: str | None = None,
        *,
        flip_rate: float | None = None,
        duration_s: float = 20.0,
        finished: bool = True,
        scope: Mapping[str, Any] | None = None,
        trigger_type: str = "manual",
    ) -> str:
        """An eval run of the workflow's current configuration (default: the invoice workflow), completed
        already or (`finished=False`) starting now and lasting `duration_s`. Its judged assertions flip at
        `flip_rate` (default: the workflow's, 0 for invoices and 0.1 for support), seeded per run."""
        suite = self._suite(workflow_id)
        chosen = dict(scope or {"type": "workflow"})
        run = SimEvalRun(
            id=opaque_id("wfevalrun", f"added-{len(self.eval_world.runs)}"),
            suite=suite,
            version=suite.workflow.version,
            evals=scoped_evals(suite, chosen),
            scope=chosen,
            created_t=self.clock.now(),
            duration_s=duration_s,
            flip_rate=suite.flip_rate if flip_rate is None else flip_rate,
            trigger_type=trigger_type,
        )
        if finished:
            run.created_t -= run.queue_s + duration_s + 1.0
        self.eval_world.runs.append(run)
        return run.id

    def edit_eval_block(
        self,
        workflow_id: str | None = None,
        *,
        regress: Iterable[str] = (),
        fix: Iterable[str] = (),
        block: Iterable[str] = (),
        drift: Mapping[str, str] | None = None,
    ) -> str:
        """A block edit, now: eval runs of the new workflow version fail the evals in `regress`, pass those
        in `fix`, block those in `block`, and block those in `drift` whose assertion the schema moved from
        under (the detail says how); the evals of the edited blocks go stale. Returns the new version's id."""
        suite = self._suite(workflow_id)
        verdicts: dict[str, EvalVerdict] = {e: "failed" for e in regress}
        verdicts |= {e: "passed" for e in fix}
        verdicts |= {e: "blocked" for e in block}
        unknown = [e for e in [*verdicts, *(drift or {})] if suite.eval(e) is None]
        if unknown:
            raise KeyError(unknown[0])
        version = self.eval_world.edit(suite, self.clock.now(), verdicts, dict(drift or {}))
        return suite.workflow.version_id(version)

    def _suite(self, workflow_id: str | None) -> EvalSuite:
        suite = self.eval_world.suite(workflow_id) if workflow_id else self.eval_world.suites[0]
        if suite is None:
            raise KeyError(workflow_id)
        return suite
