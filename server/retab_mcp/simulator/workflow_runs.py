"""The workflow run endpoints: runs (list, get, create, cancel), their steps, reviews and artifacts.

The paths of `workflow-runs-evals-openapi.json` under `/v1/workflows/runs`, `/steps`, `/reviews` and
`/artifacts`, over `SimulatedRetab.workflow_world` (workflow_world.py), with bodies from workflow_bodies.py.
A run another organisation owns (`SimulatedRetab.owners`) is "not found", and so are its steps, reviews
and artifacts. Choices where the spec is silent:
- 404 bodies are plain `{"detail": ...}`, as NOTES.md shows for a run ("Workflow run not found");
- cancelling a completed or failed run is a 409; cancelling a cancelled one answers it again (200);
- the list filter's `failed` and `queued`, which no run lifecycle has, are read as `error` and `pending`;
- a `run_id` filter naming an unknown run is a 404, as it is for experiment results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .envelopes import (
    bearer_key,
    check_enum,
    check_int,
    check_limit,
    http_exception,
    json_object,
    page,
    page_by,
    plain_detail,
    validation_error,
)
from .scenario import opaque_id
from .state import SimState
from .workflow_bodies import artifact_body, artifact_id, review_body, review_id, run_body, step_body, step_id
from .workflow_world import OPERATION_BY_PREFIX, SimWorkflowRun, StepSpan, WorkflowWorld, plan_run

RUN_FILTER_STATUSES = ("pending", "queued", "running", "completed", "error", "failed", "awaiting_review", "cancelled")
FILTER_ALIASES = {"failed": "error", "queued": "pending"}
TRIGGERS = ("manual", "api", "schedule", "webhook", "email", "restart")
DECISION_STATUSES = ("pending", "approved", "rejected", "decided", "all")
ORDERS = ("asc", "desc")
RUN_NOT_FOUND = "Workflow run not found"


ArtifactFinder = Callable[[Request, str], "dict[str, Any] | None"]


class WorkflowRunEndpoints:
    def __init__(self, sim: SimState, other_artifacts: ArtifactFinder) -> None:
        self.sim = sim
        self.other_artifacts = other_artifacts  # eval executions make artifacts too (evals.py)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/workflows/runs", self.list_runs, methods=["GET"]),
            Route("/v1/workflows/runs", self.create_run, methods=["POST"]),
            Route("/v1/workflows/runs/{run_id}", self.get_run, methods=["GET"]),
            Route("/v1/workflows/runs/{run_id}/cancel", self.cancel_run, methods=["POST"]),
            Route("/v1/workflows/steps", self.list_steps, methods=["GET"]),
            Route("/v1/workflows/steps/{step_id}", self.get_step, methods=["GET"]),
            Route("/v1/workflows/reviews", self.list_reviews, methods=["GET"]),
            Route("/v1/workflows/reviews/{review_id}", self.get_review, methods=["GET"]),
            Route("/v1/workflows/artifacts/{artifact_id}", self.get_artifact, methods=["GET"]),
        ]

    @property
    def world(self) -> WorkflowWorld:
        return self.sim.workflow_world

    def _visible(self, request: Request) -> list[SimWorkflowRun]:
        """The runs the caller's organisation may see that exist by now."""
        caller, now = bearer_key(request), self.sim.clock.now()
        return [r for r in self.world.runs if r.created_t <= now and self.sim.owners.get(r.id, caller) == caller]

    def _run(self, request: Request, run_id: str) -> SimWorkflowRun | None:
        return next((r for r in self._visible(request) if r.id == run_id), None)

    # Runs

    async def get_run(self, request: Request) -> Response:
        run = self._run(request, request.path_params["run_id"])
        if run is None:
            return plain_detail(404, RUN_NOT_FOUND)
        return JSONResponse(run_body(run, self.sim.clock.wall_at, self.sim.clock.now()))

    async def list_runs(self, request: Request) -> Response:
        q = request.query_params
        problem = (
            check_enum(q, "status", RUN_FILTER_STATUSES)
            or check_enum(q, "exclude_status", RUN_FILTER_STATUSES)
            or check_enum(q, "trigger_type", TRIGGERS)
            or check_enum(q, "order", ORDERS)
            or check_limit(q, 100)
            or check_int(q, "min_duration_ms")
            or check_int(q, "max_duration_ms")
        )
        wanted_metadata = _metadata_filter(q.get("metadata"))
        if problem or isinstance(wanted_metadata, Response):
            return problem or cast(Response, wanted_metadata)
        now, wall = self.sim.clock.now(), self.sim.clock.wall_at
        runs = self._visible(request)
        made = {r.id: i for i, r in enumerate(self.world.runs)}  # a tie in created_at goes by creation order
        runs.sort(key=lambda r: (r.created_t, made[r.id]), reverse=q.get("order", "desc") == "desc")
        durations = {r.id: _duration_ms(r, now) for r in runs}
        bodies = [run_body(r, wall, now) for r in runs]
        if q.get("workflow_id"):
            bodies = [b for b in bodies if b["workflow_id"] == q["workflow_id"]]
        if q.get("status"):
            status = FILTER_ALIASES.get(q["status"], q["status"])
            bodies = [b for b in bodies if b["lifecycle"]["status"] == status]
        if q.get("exclude_status"):
            excluded = FILTER_ALIASES.get(q["exclude_status"], q["exclude_status"])
            bodies = [b for b in bodies if b["lifecycle"]["status"] != excluded]
        if q.get("trigger_type"):
            bodies = [b for b in bodies if b["trigger"]["type"] == q["trigger_type"]]
        if q.get("from_date"):  # dates (YYYY-MM-DD), both ends included
            bodies = [b for b in bodies if b["timing"]["created_at"][:10] >= q["from_date"][:10]]
        if q.get("to_date"):
            bodies = [b for b in bodies if b["timing"]["created_at"][:10] <= q["to_date"][:10]]
        for name, keep in (("min_duration_ms", int.__ge__), ("max_duration_ms", int.__le__)):
            if q.get(name):  # a run still going has no duration yet, and matches neither
                bodies = [b for b in bodies if (d := durations[b["id"]]) is not None and keep(d, int(q[name]))]
        if q.get("search"):
            bodies = [b for b in bodies if q["search"] in b["id"]]
        if wanted_metadata:
            bodies = [b for b in bodies if wanted_metadata.items() <= (b["metadata"] or {}).items()]
        return page(bodies, q, default_limit=20)

    async def create_run(self, request: Request) -> Response:
        body = await json_object(request)
        workflow_id = body.get("workflow_id")
        if not isinstance(workflow_id, str):
            return validation_error(["body", "workflow_id"], "Field required", "missing")
        workflow = self.world.workflow(workflow_id)
        if workflow is None:
            return plain_detail(404, "Workflow not found")
        version = _version(workflow.version, workflow.version_id, body.get("version", "production"))
        if version is None:
            return plain_detail(404, "Workflow version not found")
        start_block = workflow.blocks[0].id
        documents = body.get("documents")
        document = cast(dict[str, Any], documents).get(start_block) if isinstance(documents, dict) else None
        if not isinstance(document, dict) or not isinstance(cast(dict[str, Any], document).get("filename"), str):
            return validation_error(["body", "documents", start_block], "Field required", "missing")
        filename = str(cast(dict[str, Any], document)["filename"])
        metadata = body.get("metadata")
        run_id = opaque_id("run", f"created-{len(self.world.runs)}")
        run = SimWorkflowRun(
            id=run_id,
            workflow=workflow,
            version=version,
            created_t=self.sim.clock.now(),
            plan=plan_run(workflow, total_s=self.sim.created_run_s, line_items=3),
            document=(opaque_id("file", run_id), filename),
            metadata=cast(dict[str, str], metadata) if isinstance(metadata, dict) else None,
        )
        self.world.runs.append(run)
        return JSONResponse(run_body(run, self.sim.clock.wall_at, run.created_t), status_code=202)

    async def cancel_run(self, request: Request) -> Response:
        run = self._run(request, request.path_params["run_id"])
        if run is None:
            return plain_detail(404, RUN_NOT_FOUND)
        now = self.sim.clock.now()
        status, _ = run.status_at(now)
        if status in ("completed", "error"):
            return http_exception(409, f"Workflow run is already {status}: {run.id}")
        if status != "cancelled":
            run.cancel_requested_t = now
            run.cancel_reason = "Cancelled by API request"
        return JSONResponse(
            {
                "run": run_body(run, self.sim.clock.wall_at, now),
                "redis_available": True,
                "cancellation_status": "cancelled",
            }
        )

    # Steps

    def _steps(self, runs: list[SimWorkflowRun]) -> list[tuple[SimWorkflowRun, StepSpan]]:
        now = self.sim.clock.now()
        return [(run, span) for run in runs for span in run.spans(now)]

    async def list_steps(self, request: Request) -> Response:
        q = request.query_params
        problem = check_limit(q, 1000)
        if problem:
            return problem
        runs = self._visible(request)
        if q.get("run_id"):
            runs = [r for r in runs if r.id == q["run_id"]]
            if not runs:
                return plain_detail(404, RUN_NOT_FOUND)
        now, wall = self.sim.clock.now(), self.sim.clock.wall_at
        # By start time, then step id (the spec's order); by clock time, as timestamps do not sort as text.
        ordered = sorted(self._steps(runs), key=lambda found: (found[1].start_t, step_id(found[0], found[1].index)))
        bodies = [step_body(run, span, wall, now) for run, span in ordered]
        if q.get("workflow_id"):
            runs_of_workflow = {r.id for r in runs if r.workflow.id == q["workflow_id"]}
            bodies = [b for b in bodies if b["run_id"] in runs_of_workflow]
        for name in ("block_id", "step_id"):
            if q.get(name):
                bodies = [b for b in bodies if b[name] == q[name]]
        if q.getlist("block_type"):
            bodies = [b for b in bodies if b["block_type"] in q.getlist("block_type")]
        if q.getlist("status"):
            bodies = [b for b in bodies if b["lifecycle"]["status"] in q.getlist("status")]
        return page_by(bodies, q, default_limit=20, key="step_id")

    async def get_step(self, request: Request) -> Response:
        wanted, run_id = request.path_params["step_id"], request.query_params.get("run_id")
        runs = [r for r in self._visible(request) if not run_id or r.id == run_id]
        for run, span in self._steps(runs):
            if step_id(run, span.index) == wanted:
                return JSONResponse(step_body(run, span, self.sim.clock.wall_at, self.sim.clock.now()))
        return plain_detail(404, "Workflow step not found")

    # Reviews

    def _reviews(self, runs: list[SimWorkflowRun]) -> list[tuple[SimWorkflowRun, StepSpan]]:
        now = self.sim.clock.now()
        return [(run, span) for run in runs for span in run.gated_spans(now)]

    async def list_reviews(self, request: Request) -> Response:
        q = request.query_params
        problem = (
            check_enum(q, "decision_status", DECISION_STATUSES) or check_enum(q, "order", ORDERS) or check_limit(q, 200)
        )
        if problem:
            return problem
        runs = self._visible(request)
        if q.get("run_id"):
            runs = [r for r in runs if r.id == q["run_id"]]
            if not runs:
                return plain_detail(404, RUN_NOT_FOUND)
        now, wall = self.sim.clock.now(), self.sim.clock.wall_at
        found = sorted(self._reviews(runs), key=lambda pair: pair[1].executed_t)  # when each was created
        if q.get("order", "asc") == "desc":
            found.reverse()
        reviews = [(run, review_body(run, span, wall, now)) for run, span in found]
        wanted = q.get("decision_status", "pending")
        chosen = [body for run, body in reviews if _decision_matches(run, body, wanted, now)]
        for name in ("workflow_id", "block_id", "step_id", "iteration_key"):
            if q.get(name):
                chosen = [b for b in chosen if b[name] == q[name]]
        return page(chosen, q, default_limit=50)

    async def get_review(self, request: Request) -> Response:
        wanted = request.path_params["review_id"]
        for run, span in self._reviews(self._visible(request)):
            if review_id(run, span.index) == wanted:
                return JSONResponse(review_body(run, span, self.sim.clock.wall_at, self.sim.clock.now()))
        return plain_detail(404, "Review not found")

    # Artifacts

    async def get_artifact(self, request: Request) -> Response:
        wanted = request.path_params["artifact_id"]
        if wanted.split("_", 1)[0] not in OPERATION_BY_PREFIX:  # Retab reads the kind from the prefix
            return plain_detail(404, "Artifact not found")
        now = self.sim.clock.now()
        for run, span in self._steps(self._visible(request)):
            executed = span.executed_t <= now and run.step_status_at(span, now) not in ("cancelled", "skipped")
            if executed and artifact_id(run, span) == wanted:
                return JSONResponse(artifact_body(run, span, self.sim.clock.wall_at))
        found = self.other_artifacts(request, wanted)
        return JSONResponse(found) if found is not None else plain_detail(404, "Artifact not found")


def _duration_ms(run: SimWorkflowRun, now: float) -> int | None:
    """completed_at - started_at, the duration the spec's filters mean; None before the run ends."""
    _, ended = run.status_at(now)
    return round((ended - run.start_t) * 1000) if ended is not None and ended >= run.start_t else None


def _metadata_filter(raw: str | None) -> dict[str, str] | Response:
    """The `metadata` filter: a JSON object of key/value pairs a run's metadata must contain."""
    if not raw:
        return {}
    try:
        wanted: Any = json.loads(raw)
    except ValueError:
        wanted = None
    if not isinstance(wanted, dict):
        return validation_error(["query", "metadata"], "Value error, metadata must be a JSON object", "value_error")
    return {str(k): str(v) for k, v in cast(dict[str, Any], wanted).items()}


def _version(current: int, version_id: Callable[[int], str], asked: object) -> int | None:
    """The workflow version a create asks for: production and draft are the current one here; a pinned
    `ver_...` must be one of the workflow's versions."""
    if asked in ("production", "draft"):
        return current
    return next((v for v in range(1, current + 1) if version_id(v) == asked), None)


def _decision_matches(run: SimWorkflowRun, review: dict[str, Any], wanted: str, now: float) -> bool:
    decision = review["decision"]
    if wanted == "all":
        return True
    if wanted == "pending":  # a review of a cancelled run can no longer be decided
        return decision is None and run.status_at(now)[0] != "cancelled"
    if wanted == "decided":
        return decision is not None
    return decision is not None and decision["verdict"] == wanted
