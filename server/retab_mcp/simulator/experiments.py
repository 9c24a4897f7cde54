"""The experiment endpoints: experiments, their runs (list, get, create, cancel), results and metrics.

Every path under `/v1/workflows/experiments` (NOTES.md, first part). The world they read and change is
`SimulatedRetab.world` (scenario.py); metrics views are built by metrics.py.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .envelopes import (
    bearer_key,
    check_enum,
    check_limit,
    experiment_run_not_found,
    http_exception,
    json_object,
    page,
    require,
    validation_error,
)
from .metrics import VIEWS, metrics_answer
from .scenario import BlockEdit, SimExperiment, iso, make_experiment, result_body, run_body, start_consensus_run
from .state import SimState

PREFIX = "/v1/workflows/experiments"
RUNS_PREFIX = f"{PREFIX}/runs/"
RUN_STATUSES = ("pending", "queued", "running", "completed", "error", "cancelled")


class ExperimentEndpoints:
    def __init__(self, sim: SimState) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        # Fixed paths before `{experiment_id}`, which would take them all.
        return [
            Route(PREFIX, self.list_experiments, methods=["GET"]),
            Route(f"{PREFIX}/runs", self.list_runs, methods=["GET"]),
            Route(f"{PREFIX}/runs", self.create_run, methods=["POST"]),
            Route(f"{PREFIX}/runs/{{run_id}}", self.get_run, methods=["GET"]),
            Route(f"{PREFIX}/runs/{{run_id}}/cancel", self.cancel_run, methods=["POST"]),
            Route(PREFIX, self.create_experiment, methods=["POST"]),
            Route(f"{PREFIX}/results", self.list_results, methods=["GET"]),
            Route(f"{PREFIX}/results/{{result_id}}", self.get_result, methods=["GET"]),
            Route(f"{PREFIX}/metrics", self.metrics, methods=["GET"]),
            Route(f"{PREFIX}/{{experiment_id}}", self.get_experiment, methods=["GET"]),
            Route(f"{PREFIX}/{{experiment_id}}", self.update_experiment, methods=["PATCH"]),
            Route(f"{PREFIX}/{{experiment_id}}", self.delete_experiment, methods=["DELETE"]),
        ]

    # Runs

    async def get_run(self, request: Request) -> Response:
        run = self.sim.world.run(request.path_params["run_id"])
        if run is None:
            return experiment_run_not_found(request.path_params["run_id"])
        return JSONResponse(run_body(self.sim.world, run, self.sim.clock.now()))

    async def list_runs(self, request: Request) -> Response:
        q = request.query_params
        problem = (
            check_enum(q, "status", RUN_STATUSES)
            or check_enum(q, "exclude_status", RUN_STATUSES)
            or check_enum(q, "order", ("asc", "desc"))
            or check_limit(q, 100)
        )
        if problem:
            return problem
        world, now = self.sim.world, self.sim.clock.now()
        caller = bearer_key(request)
        seen = [r for r in world.runs if r.created_t <= now and self.sim.owners.get(r.id, caller) == caller]
        bodies = [run_body(world, r, now) for r in seen]
        for name in ("workflow_id", "experiment_id", "block_id"):
            if q.get(name):
                bodies = [b for b in bodies if b[name] == q[name]]
        if q.get("status"):
            bodies = [b for b in bodies if b["lifecycle"]["status"] == q["status"]]
        if q.get("exclude_status"):
            bodies = [b for b in bodies if b["lifecycle"]["status"] != q["exclude_status"]]
        if q.get("trigger_type"):
            bodies = [b for b in bodies if b["trigger"]["type"] == q["trigger_type"]]
        if q.get("from_date"):
            bodies = [b for b in bodies if b["timing"]["created_at"] >= q["from_date"]]
        if q.get("to_date"):
            bodies = [b for b in bodies if b["timing"]["created_at"] <= q["to_date"]]
        made = {r.id: i for i, r in enumerate(world.runs)}  # a tie in created_at goes by creation order
        bodies.sort(key=lambda b: (b["timing"]["created_at"], made[b["id"]]), reverse=q.get("order", "desc") == "desc")
        return page(bodies, q, default_limit=20)

    async def create_run(self, request: Request) -> Response:
        body = await json_object(request)
        experiment_id = body.get("experiment_id")
        if not isinstance(experiment_id, str):
            return validation_error(["body", "experiment_id"], "Field required", "missing")
        experiment = self.sim.world.experiment(experiment_id)
        if experiment is None:
            return http_exception(404, f"Experiment not found: {experiment_id}")
        workflow_id = body.get("workflow_id")
        if workflow_id is not None and workflow_id != experiment.workflow_id:
            return http_exception(404, f"Experiment {experiment_id} not found in workflow {workflow_id}")
        now = self.sim.clock.now()
        run = start_consensus_run(self.sim.world, experiment, now=now, duration_s=self.sim.created_run_s)
        self.sim.added_runs.append(run.id)
        return JSONResponse(run_body(self.sim.world, run, now), status_code=202)

    async def cancel_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = self.sim.world.run(run_id)
        now = self.sim.clock.now()
        if run is None:
            return experiment_run_not_found(run_id)
        status, _ = run.state_at(now)
        if status in ("completed", "error"):
            return http_exception(404, f"Experiment run is already {status}: {run_id}")
        if status != "cancelled":
            run.cancel_requested_t = now
            run.cancel_reason = "Cancelled by API request"
        return JSONResponse({"id": run.id, "lifecycle": run_body(self.sim.world, run, now)["lifecycle"]})

    # Results and metrics

    async def list_results(self, request: Request) -> Response:
        q = request.query_params
        problem = check_limit(q, 1000) or check_enum(q, "order", ("asc", "desc")) or require(q, "run_id")
        if problem:
            return problem
        world = self.sim.world
        run = world.run(q["run_id"])
        if run is None:
            return experiment_run_not_found(q["run_id"])
        status, completed = run.state_at(self.sim.clock.now())
        rows = [result_body(world, run, index, status, completed) for index in range(run.total)]
        if q.get("order", "desc") == "desc":
            rows.reverse()
        return page(rows, q, default_limit=100)

    async def get_result(self, request: Request) -> Response:
        result_id = request.path_params["result_id"]
        world, now = self.sim.world, self.sim.clock.now()
        for run in world.runs:
            status, completed = run.state_at(now)
            for index in range(run.total):
                body = result_body(world, run, index, status, completed)
                if body["id"] == result_id:
                    return JSONResponse(body)
        return http_exception(404, f"Experiment result not found: {result_id}")

    async def metrics(self, request: Request) -> Response:
        q = request.query_params
        problem = require(q, "run_id") or check_enum(q, "view", VIEWS)
        if problem:
            return problem
        run = self.sim.world.run(q["run_id"])
        if run is None:
            return experiment_run_not_found(q["run_id"])
        return metrics_answer(self.sim.world, run, q, self.sim.clock.now())

    # Experiments

    async def list_experiments(self, request: Request) -> Response:
        q = request.query_params
        problem = require(q, "workflow_id") or check_limit(q, 100) or check_enum(q, "order", ("asc", "desc"))
        if problem:
            return problem
        bodies = [self.experiment_body(e) for e in self.sim.world.experiments if e.workflow_id == q["workflow_id"]]
        if q.get("block_id"):
            bodies = [b for b in bodies if b["block_id"] == q["block_id"]]
        return page(bodies, q, default_limit=50)

    async def create_experiment(self, request: Request) -> Response:
        body = await json_object(request)
        workflow_id = body.get("workflow_id")
        if not isinstance(workflow_id, str):
            return validation_error(["body", "workflow_id"], "Field required", "missing")
        n_consensus = body.get("n_consensus", 5)
        if n_consensus not in (3, 5, 7):
            return validation_error(["body", "n_consensus"], "Input should be 3, 5 or 7", "enum")
        documents = body.get("documents")
        world = self.sim.world
        name = str(body.get("name") or f"experiment-{len(world.experiments)}")
        experiment = make_experiment(
            name,
            documents=len(cast(list[object], documents)) if isinstance(documents, list) else 12,
            n_consensus=int(cast(int, n_consensus)),
            workflow_id=workflow_id,
            epoch=world.wall(self.sim.clock.now()),
        )
        world.experiments.append(experiment)
        return JSONResponse(self.experiment_body(experiment), status_code=201)

    async def update_experiment(self, request: Request) -> Response:
        experiment = self.sim.world.experiment(request.path_params["experiment_id"])
        if experiment is None:
            return http_exception(404, f"Experiment not found: {request.path_params['experiment_id']}")
        body = await json_object(request)
        if body.get("n_consensus") is not None:
            if body["n_consensus"] not in (3, 5, 7):
                return validation_error(["body", "n_consensus"], "Input should be 3, 5 or 7", "enum")
            experiment.n_consensus = int(cast(int, body["n_consensus"]))
            # A new consensus count is a new block configuration: the last run's metrics go stale.
            experiment.edits.append(BlockEdit())
            experiment.config = len(experiment.edits)
        if isinstance(body.get("name"), str):
            experiment.name = str(body["name"])
        return JSONResponse(self.experiment_body(experiment))

    async def delete_experiment(self, request: Request) -> Response:
        world = self.sim.world
        experiment = world.experiment(request.path_params["experiment_id"])
        if experiment is None:
            return http_exception(404, f"Experiment not found: {request.path_params['experiment_id']}")
        world.experiments.remove(experiment)
        world.runs = [run for run in world.runs if run.experiment is not experiment]
        return Response(status_code=204)

    async def get_experiment(self, request: Request) -> Response:
        experiment = self.sim.world.experiment(request.path_params["experiment_id"])
        if experiment is None:
            return http_exception(404, f"Experiment not found: {request.path_params['experiment_id']}")
        return JSONResponse(self.experiment_body(experiment))

    def experiment_body(self, exp: SimExperiment) -> dict[str, Any]:
        world, now = self.sim.world, self.sim.clock.now()
        runs = sorted((r for r in world.runs if r.experiment is exp and r.created_t <= now), key=lambda r: r.created_t)
        last = runs[-1] if runs else None
        last_status = last.state_at(now)[0] if last else None
        status = {"completed": "completed", "error": "failed", "cancelled": "cancelled", None: "draft"}.get(
            last_status, "processing"
        )
        created = iso(exp.created_at)
        # Stale: the last run's metrics were made with another block configuration than the current one.
        reasons = ["block_changed"] if last and last.config is not None and last.config != exp.config else []
        stale = bool(last and last.metrics_stale) or bool(reasons)
        return {
            "id": exp.id,
            "workflow_id": exp.workflow_id,
            "block_id": exp.block_id,
            "n_consensus": exp.n_consensus,
            "document_count": len(exp.documents),
            "name": exp.name,
            "last_run_id": last.id if last else None,
            "created_at": created,
            "updated_at": created,
            "status": status,
            "block_type": exp.block_type,
            "score": last.final_score if last and last_status == "completed" else None,
            "is_stale": stale,
            "freshness": {"status": "stale" if stale else "fresh", "reasons": reasons},
            "freshness_state": "stale" if stale else "fresh",
            "freshness_reasons": reasons,
            "run_plan_mode": "run",
            "rerunnable_document_count": len(exp.documents),
            "schema_drift": "none",
            "schema_drift_detail": None,
            "drift": {"status": "none", "affected_targets": [], "detail": None},
        }


def experiment_run_in_path(path: str) -> str | None:
    """The experiment run a path names (`/runs/{id}` or `/runs/{id}/cancel`), if it names one."""
    return path[len(RUNS_PREFIX) :].split("/")[0] if path.startswith(RUNS_PREFIX) else None
