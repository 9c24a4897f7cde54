"""The simulated Retab API: `SimulatedRetab`, an ASGI app over a seeded world, with controls for tests.

This module is the facade and the dispatch: what every request goes through (recording, authentication,
organisations, injected faults, lost answers, request ids) before the endpoints of each kind answer it
(experiments.py, workflow_runs.py, evals.py). Controls: `clock` (advance a VirtualClock), `inject(...)`
(faults.py), `drop_answer(...)`, `requests` (what was asked, headers included), `stats()`, and the
controls that shape the world of each kind (experiment_controls.py, workflow_controls.py).

Three worlds, one clock: `world` (experiments and their runs, scenario.py), `workflow_world` (workflow
runs, their steps and reviews, workflow_world.py) and `eval_world` (evals and eval runs, eval_world.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..base.clock import Clock, RealClock
from .envelopes import experiment_run_not_found, http_exception
from .eval_scenario import seed_eval_world
from .eval_world import EvalWorld
from .evals import EvalEndpoints
from .experiment_controls import DEMO_LOOP_EXPERIMENT, ExperimentControls
from .experiments import PREFIX as EXPERIMENTS_PREFIX
from .experiments import RUNS_PREFIX, ExperimentEndpoints, experiment_run_in_path
from .faults import Fault, FaultKind, LossKind, answer_with_fault, lose_the_answer
from .scenario import World, seed_world
from .workflow_controls import WorkflowControls
from .workflow_runs import WorkflowRunEndpoints
from .workflow_world import WorkflowWorld, seed_workflow_world

__all__ = ["DEMO_LOOP_EXPERIMENT", "Fault", "FaultKind", "RecordedRequest", "SimulatedRetab"]

STATS_PATH = "/_simulator/stats"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    t: float


@dataclass
class SimulatedRetab(ExperimentControls, WorkflowControls):
    clock: Clock = field(default_factory=RealClock)
    demo: bool = False
    accepted_keys: set[str] | None = None  # None: any bearer token is accepted
    forbidden_keys: set[str] = field(default_factory=set[str])
    echo_key_in_errors: bool = False  # as some APIs do: error messages quote the key that was sent
    world: World = field(init=False)
    workflow_world: WorkflowWorld = field(init=False)
    eval_world: EvalWorld = field(init=False)
    requests: list[RecordedRequest] = field(default_factory=list[RecordedRequest])
    faults: list[Fault] = field(default_factory=list[Fault])
    request_hook: Callable[[RecordedRequest], None] | None = None  # called as each request arrives
    request_cancelled: anyio.Event = field(default_factory=anyio.Event)  # set when a slow answer is abandoned
    added_runs: list[str] = field(default_factory=list[str])
    created_run_s: float = 30.0  # how long a run started by a POST lasts (experiment, workflow or eval run)
    # The answers to lose (drop_answer): method, path, how.
    dropped: list[tuple[str, str, LossKind]] = field(default_factory=list[tuple[str, str, LossKind]])
    # Organisations: a run (of any kind) listed here belongs to the key given, and is "not found" to any
    # other key, as another organisation's run is on Retab, and so is what it holds; unlisted runs are
    # everyone's.
    owners: dict[str, str] = field(default_factory=dict[str, str])
    _request_counter: int = 0

    def __post_init__(self) -> None:
        self.world = seed_world(self.clock, demo=self.demo)
        self.workflow_world = seed_workflow_world(self.clock, demo=self.demo)
        self.eval_world = seed_eval_world(self.clock, self.workflow_world, demo=self.demo)
        if self.demo:
            self._seed_the_loop()
        evals = EvalEndpoints(self)
        routes = [
            *ExperimentEndpoints(self).routes(),
            *WorkflowRunEndpoints(self, evals.artifact).routes(),
            *evals.routes(),
        ]
        self.app = Starlette(routes=routes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == STATS_PATH:  # a control for benchmarks, outside the API: not recorded, no auth
            await JSONResponse(self.stats())(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._guard(request)
        stamped_send = self._stamp(send)
        drop = self._drop_for(scope) if response is None else None
        if drop is not None:
            await lose_the_answer(self.app, drop, scope, receive, stamped_send)
        elif response is None:
            await self.app(scope, receive, stamped_send)
        else:
            await response(scope, receive, stamped_send)

    # Controls

    def stats(self) -> dict[str, Any]:
        """Requests served so far, in all and per run (GET /runs/{id}), the runs added by `add_run` with the
        times each was read, and the simulator's clock now."""
        per_run: dict[str, int] = {}
        for request in self.requests:
            if request.path.startswith(RUNS_PREFIX):
                run_id = request.path[len(RUNS_PREFIX) :]
                per_run[run_id] = per_run.get(run_id, 0) + 1
        added = set(self.added_runs)
        times: dict[str, list[float]] = {}
        for request in self.requests:
            run_id = request.path[len(RUNS_PREFIX) :] if request.path.startswith(RUNS_PREFIX) else ""
            if run_id in added and request.method == "GET":
                times.setdefault(run_id, []).append(request.t)
        return {
            "requests": len(self.requests),
            "per_run": per_run,
            "added_runs": self.added_runs,
            "poll_times": times,  # of the added runs, by the simulator's clock
            "now": self.clock.now(),
        }

    def inject(
        self,
        kind: FaultKind = "status",
        *,
        times: int = 1,
        status: int = 503,
        retry_after: str | None = None,
        delay_s: float = 0.0,
        path_contains: str = "",
        body: Any = None,
        media_type: str = "application/json",
    ) -> None:
        self.faults.append(Fault(kind, times, status, retry_after, delay_s, path_contains, body, media_type))

    def drop_answer(self, method: str = "POST", path: str = "/runs", how: LossKind = "502") -> None:
        """Act on the next `method` request to a path ending in `path`, then lose its answer ("502": a proxy's
        error page, "cut": the connection cut mid-answer); "502-unsent": the proxy fails before the API acts."""
        self.dropped.append((method, path, how))

    # What every request goes through: recording, auth, organisations, injected faults, request ids

    def _drop_for(self, scope: Any) -> LossKind | None:
        for i, (method, path, how) in enumerate(self.dropped):
            if scope["method"] == method and scope["path"].endswith(path):
                del self.dropped[i]
                return how
        return None

    def _stamp(self, send: Callable[..., Any]) -> Callable[..., Any]:
        self._request_counter += 1
        request_id = f"req_sim_{self._request_counter:06d}"

        async def stamped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        return stamped

    async def _guard(self, request: Request) -> Response | None:
        recorded = RecordedRequest(
            request.method,
            request.url.path,
            dict(request.query_params),
            dict(request.headers),
            self.clock.now(),
        )
        self.requests.append(recorded)
        if self.request_hook is not None:
            self.request_hook(recorded)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        key = auth[7:].strip()
        quoted = f" ({key})" if self.echo_key_in_errors else ""
        if self.accepted_keys is not None and key not in self.accepted_keys:
            return http_exception(401, f"Invalid API key{quoted}")
        if key in self.forbidden_keys:
            return http_exception(403, f"This API key{quoted} may not read workflow experiments")
        path = request.url.path
        if path.startswith(EXPERIMENTS_PREFIX):  # the other kinds' endpoints check ownership themselves
            in_path = experiment_run_in_path(path)
            run_id = in_path if in_path is not None else request.query_params.get("run_id")
            if run_id and self.owners.get(run_id, key) != key:
                return experiment_run_not_found(run_id)
        return await answer_with_fault(self.faults, path, quoted, self.request_cancelled.set)
