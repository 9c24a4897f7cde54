"""The eval endpoints: saved evals, eval runs (list, get, create, cancel) and eval results.

The paths of `workflow-runs-evals-openapi.json` under `/v1/workflows/evals`, over
`SimulatedRetab.eval_world` (eval_world.py), with bodies from eval_bodies.py. An eval run another
organisation owns (`SimulatedRetab.owners`) is "not found", and so are its results. Choices where the spec
is silent:
- 404 bodies are plain `{"detail": ...}` naming the id, as NOTES.md shows for an eval run;
- cancelling a completed or failed eval run is a 404 (the SDK's description: "not in a cancellable
  state"); cancelling a cancelled one answers it again (200);
- the `eval_id` and `target_block_id` filters keep the runs that replayed that eval, or an eval of that
  block, whatever their scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .envelopes import bearer_key, check_enum, check_limit, json_object, page, plain_detail, require, validation_error
from .eval_bodies import artifact_body, artifact_id, eval_body, result_body, result_id, run_body
from .eval_world import EvalWorld, SimEvalRun, scoped_evals
from .scenario import opaque_id
from .state import SimState

PREFIX = "/v1/workflows/evals"
ORDERS = ("asc", "desc")
SCOPES = ("workflow", "block", "single")


def run_not_found(run_id: str) -> JSONResponse:
    return plain_detail(404, f"Workflow eval run not found: {run_id}")


class EvalEndpoints:
    def __init__(self, sim: SimState) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        # Fixed paths before `{eval_id}`, which would take them all.
        return [
            Route(PREFIX, self.list_evals, methods=["GET"]),
            Route(f"{PREFIX}/runs", self.list_runs, methods=["GET"]),
            Route(f"{PREFIX}/runs", self.create_run, methods=["POST"]),
            Route(f"{PREFIX}/runs/{{run_id}}", self.get_run, methods=["GET"]),
            Route(f"{PREFIX}/runs/{{run_id}}/cancel", self.cancel_run, methods=["POST"]),
            Route(f"{PREFIX}/results", self.list_results, methods=["GET"]),
            Route(f"{PREFIX}/results/{{result_id}}", self.get_result, methods=["GET"]),
            Route(f"{PREFIX}/{{eval_id}}", self.get_eval, methods=["GET"]),
        ]

    @property
    def world(self) -> EvalWorld:
        return self.sim.eval_world

    def _visible(self, request: Request) -> list[SimEvalRun]:
        """The eval runs the caller's organisation may see that exist by now, oldest first."""
        caller, now = bearer_key(request), self.sim.clock.now()
        runs = [r for r in self.world.runs if r.created_t <= now and self.sim.owners.get(r.id, caller) == caller]
        made = {r.id: i for i, r in enumerate(self.world.runs)}  # a tie in created_at goes by creation order
        return sorted(runs, key=lambda r: (r.created_t, made[r.id]))

    def _run(self, request: Request, run_id: str) -> SimEvalRun | None:
        return next((r for r in self._visible(request) if r.id == run_id), None)

    def _run_body(self, run: SimEvalRun, visible: list[SimEvalRun]) -> dict[str, Any]:
        now = self.sim.clock.now()
        earlier = [
            r
            for r in visible
            if r.suite is run.suite and r.created_t < run.created_t and r.state_at(now)[0] == "completed"
        ]
        return run_body(run, self.sim.clock.wall_at, now, earlier[-1] if earlier else None)

    # Evals

    async def list_evals(self, request: Request) -> Response:
        q = request.query_params
        problem = require(q, "workflow_id") or check_limit(q, 100) or check_enum(q, "order", ORDERS)
        if problem:
            return problem
        suite = self.world.suite(q["workflow_id"])
        if suite is None:
            return plain_detail(404, f"Workflow not found: {q['workflow_id']}")
        runs, now = self._visible(request), self.sim.clock.now()
        evals = [e for e in suite.evals if not q.get("target_block_id") or e.block.id == q["target_block_id"]]
        if q.get("order", "desc") == "desc":  # newest first; evals made together, last made first
            evals.reverse()
        bodies = [eval_body(e, suite, runs, self.sim.clock.wall_at, now) for e in evals]
        return page(bodies, q, default_limit=50)

    async def get_eval(self, request: Request) -> Response:
        found = self.world.eval(request.path_params["eval_id"])
        suite = self.world.suite(found.workflow.id) if found else None
        if found is None or suite is None:
            return plain_detail(404, f"Workflow eval not found: {request.path_params['eval_id']}")
        body = eval_body(found, suite, self._visible(request), self.sim.clock.wall_at, self.sim.clock.now())
        return JSONResponse(body)

    # Eval runs

    async def get_run(self, request: Request) -> Response:
        visible = self._visible(request)
        run = next((r for r in visible if r.id == request.path_params["run_id"]), None)
        if run is None:
            return run_not_found(request.path_params["run_id"])
        return JSONResponse(self._run_body(run, visible))

    async def list_runs(self, request: Request) -> Response:
        q = request.query_params
        problem = check_limit(q, 100) or check_enum(q, "order", ORDERS)
        bounds: dict[str, datetime] = {}
        for name in ("from_date", "to_date"):
            if q.get(name) and not problem:
                try:
                    bounds[name] = datetime.fromisoformat(q[name])
                except ValueError:
                    problem = validation_error(["query", name], "Input should be a valid datetime", "datetime_parsing")
        if problem:
            return problem
        visible = self._visible(request)
        runs = list(reversed(visible)) if q.get("order", "desc") == "desc" else visible
        if q.get("workflow_id"):
            runs = [r for r in runs if r.suite.workflow.id == q["workflow_id"]]
        if q.get("eval_id"):
            runs = [r for r in runs if any(e.id == q["eval_id"] for e in r.evals)]
        if q.get("target_block_id"):
            runs = [r for r in runs if any(e.block.id == q["target_block_id"] for e in r.evals)]
        bodies = [self._run_body(r, visible) for r in runs]
        if q.get("status"):
            bodies = [b for b in bodies if b["lifecycle"]["status"] == q["status"]]
        if q.get("exclude_status"):
            bodies = [b for b in bodies if b["lifecycle"]["status"] != q["exclude_status"]]
        if q.get("trigger_type"):
            bodies = [b for b in bodies if b["trigger"]["type"] == q["trigger_type"]]
        for name, keep in (("from_date", datetime.__ge__), ("to_date", datetime.__le__)):
            if name in bounds:
                bodies = [b for b in bodies if keep(_instant(b["timing"]["created_at"]), _aware(bounds[name]))]
        return page(bodies, q, default_limit=50)

    async def create_run(self, request: Request) -> Response:
        body = await json_object(request)
        extra = sorted(set(body) - {"workflow_id", "scope"})
        if extra:  # CreateWorkflowEvalRunRequest forbids other properties
            return validation_error(["body", extra[0]], "Extra inputs are not permitted", "extra_forbidden")
        workflow_id = body.get("workflow_id")
        if not isinstance(workflow_id, str):
            return validation_error(["body", "workflow_id"], "Field required", "missing")
        scope = body.get("scope") or {"type": "workflow"}
        if not isinstance(scope, dict) or cast(dict[str, Any], scope).get("type") not in SCOPES:
            tags = "Input tag does not match any of 'single', 'workflow', 'block'"
            return validation_error(["body", "scope"], tags, "union_tag_invalid")
        scope = cast(dict[str, Any], scope)
        suite = self.world.suite(workflow_id)
        if suite is None:
            return plain_detail(404, f"Workflow not found: {workflow_id}")
        evals = scoped_evals(suite, scope)
        if not evals:
            if scope["type"] == "single":
                return plain_detail(404, f"Workflow eval not found: {scope.get('eval_id')}")
            return plain_detail(404, f"No workflow evals target block: {scope.get('block_id')}")
        run = SimEvalRun(
            id=opaque_id("wfevalrun", f"created-{len(self.world.runs)}"),
            suite=suite,
            version=suite.workflow.version,
            evals=evals,
            scope=scope,
            created_t=self.sim.clock.now(),
            duration_s=self.sim.created_run_s,
            flip_rate=suite.flip_rate,
            trigger_type="api",
        )
        self.world.runs.append(run)
        return JSONResponse(self._run_body(run, self._visible(request)), status_code=202)

    async def cancel_run(self, request: Request) -> Response:
        visible = self._visible(request)
        run = next((r for r in visible if r.id == request.path_params["run_id"]), None)
        if run is None:
            return run_not_found(request.path_params["run_id"])
        now = self.sim.clock.now()
        status, _ = run.state_at(now)
        if status in ("completed", "error"):
            return plain_detail(404, f"Workflow eval run is not cancellable, it is {status}: {run.id}")
        if status != "cancelled":
            run.cancel_requested_t = now
            run.cancel_reason = "Cancelled by API request"
        return JSONResponse(self._run_body(run, visible))

    # Results

    async def list_results(self, request: Request) -> Response:
        q = request.query_params
        problem = require(q, "run_id") or check_limit(q, 100) or check_enum(q, "order", ORDERS)
        if problem:
            return problem
        run = self._run(request, q["run_id"])
        if run is None:
            return run_not_found(q["run_id"])
        rows = [result_body(run, i, self.sim.clock.wall_at, self.sim.clock.now()) for i in range(run.total)]
        if q.get("order", "desc") == "desc":
            rows.reverse()
        return page(rows, q, default_limit=20)

    async def get_result(self, request: Request) -> Response:
        wanted = request.path_params["result_id"]
        for run in self._visible(request):
            for i, e in enumerate(run.evals):
                if result_id(run, e) == wanted:
                    return JSONResponse(result_body(run, i, self.sim.clock.wall_at, self.sim.clock.now()))
        return plain_detail(404, f"Workflow eval result not found: {wanted}")

    def artifact(self, request: Request, wanted: str) -> dict[str, Any] | None:
        """The artifact of an eval's execution, for GET /v1/workflows/artifacts/{id} (workflow_runs.py)."""
        now = self.sim.clock.now()
        for run in self._visible(request):
            for i, e in enumerate(run.evals):
                if artifact_id(run, e) == wanted and result_body(run, i, self.sim.clock.wall_at, now)["verdict"]:
                    return artifact_body(run, i, self.sim.clock.wall_at)
        return None


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _aware(value: datetime) -> datetime:
    """A date-time without a zone is read as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
