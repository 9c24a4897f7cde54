"""The standard scenario of evals and eval runs: what the seeded evals check, and the runs that replay them.

The invoice workflow's 12 evals cover the assertion kinds the spec names (equals, number_compare,
matches_regex, similarity_gte, exists, length_compare, between, llm_judged_as, llm_not_judged_as),
with the values they compare taken from the workflow run they were captured from; the support
workflow's 30 evals are all judged by a model, for the noise of flipping judges. `seed_eval_world`
says which runs exist and what they show.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any, cast

from ..base.clock import Clock
from .eval_world import EvalSuite, EvalVerdict, EvalWorld, Expectation, SimEval, SimEvalRun, eval_run_id
from .scenario import opaque_id
from .workflow_bodies import invoice_of, step_id
from .workflow_world import SimBlock, SimWorkflow, SimWorkflowRun, WorkflowWorld, workflow_run_id

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
