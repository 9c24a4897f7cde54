"""The simulated Retab API: an ASGI app over a `World`, with controls for tests.

Controls: `clock` (advance a VirtualClock), `inject(...)` (answer the next matching requests with a
fault), `requests` (what was asked, headers included), `add_run(...)` (a run of a chosen shape that
starts now). Faults:
- "status": an error status with a FastAPI envelope (or `body`), optionally with Retry-After;
- "slow": the normal answer, after `delay_s` of real time (it is the network that is slow);
- "malformed": a 200 whose body is not JSON (or `body`);
- "raw": any `status`, `body` and `media_type`, e.g. a proxy's HTML error page or a drifted schema;
- "truncated": a 200 that declares more bytes than it sends, then ends (over a real socket the
  connection is cut mid-body).
`drop_answer(...)` acts on the next matching request and then loses its answer (a 502 from a proxy, or a
cut connection): the API did what was asked, the caller cannot know. `edit_block(...)` makes a new block
configuration of an experiment, which moves the agreement of chosen documents and fields in the runs
started after it (the consensus model of scenario.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..clock import Clock, RealClock
from .scenario import (
    TARGETS,
    BlockEdit,
    Outcome,
    SimExperiment,
    SimRun,
    World,
    consensus_final_score,
    document_score,
    iso,
    make_experiment,
    opaque_id,
    result_body,
    run_body,
    seed_world,
)

FaultKind = Literal["status", "slow", "malformed", "raw", "truncated"]
STATS_PATH = "/_simulator/stats"
RUNS_PREFIX = "/v1/workflows/experiments/runs/"
RUN_STATUSES = ("pending", "queued", "running", "completed", "error", "cancelled")


@dataclass
class Fault:
    kind: FaultKind
    times: int
    status: int = 503
    retry_after: str | None = None
    delay_s: float = 0.0
    path_contains: str = ""
    body: Any = None
    media_type: str = "application/json"


DEMO_LOOP_EXPERIMENT = "invoices-tuned"  # the demo's experiment for the loop: start, wait, compare


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    t: float


@dataclass
class SimulatedRetab:
    clock: Clock = field(default_factory=RealClock)
    demo: bool = False
    accepted_keys: set[str] | None = None  # None: any bearer token is accepted
    forbidden_keys: set[str] = field(default_factory=set[str])
    echo_key_in_errors: bool = False  # as some APIs do: error messages quote the key that was sent
    world: World = field(init=False)
    requests: list[RecordedRequest] = field(default_factory=list[RecordedRequest])
    faults: list[Fault] = field(default_factory=list[Fault])
    request_hook: Callable[[RecordedRequest], None] | None = None  # called as each request arrives
    request_cancelled: anyio.Event = field(default_factory=anyio.Event)  # set when a slow answer is abandoned
    added_runs: list[str] = field(default_factory=list[str])
    created_run_s: float = 30.0  # how long a run started by POST /runs lasts
    dropped: list[tuple[str, str, str]] = field(default_factory=list[tuple[str, str, str]])  # method, path, how
    # Organisations: a run listed here belongs to the key given, and is "not found" to any other key, as
    # another organisation's run is on Retab; unlisted runs are everyone's.
    owners: dict[str, str] = field(default_factory=dict[str, str])
    _request_counter: int = 0

    def __post_init__(self) -> None:
        self.world = seed_world(self.clock, demo=self.demo)
        if self.demo:
            self._seed_the_loop()
        self.app = Starlette(
            routes=[
                Route("/v1/workflows/experiments", self._list_experiments, methods=["GET"]),
                Route("/v1/workflows/experiments/runs", self._list_runs, methods=["GET"]),
                Route("/v1/workflows/experiments/runs", self._create_run, methods=["POST"]),
                Route("/v1/workflows/experiments/runs/{run_id}", self._get_run, methods=["GET"]),
                Route("/v1/workflows/experiments/runs/{run_id}/cancel", self._cancel_run, methods=["POST"]),
                Route("/v1/workflows/experiments", self._create_experiment, methods=["POST"]),
                Route("/v1/workflows/experiments/results", self._list_results, methods=["GET"]),
                Route("/v1/workflows/experiments/results/{result_id}", self._get_result, methods=["GET"]),
                Route("/v1/workflows/experiments/metrics", self._metrics, methods=["GET"]),
                Route("/v1/workflows/experiments/{experiment_id}", self._get_experiment, methods=["GET"]),
                Route("/v1/workflows/experiments/{experiment_id}", self._update_experiment, methods=["PATCH"]),
                Route("/v1/workflows/experiments/{experiment_id}", self._delete_experiment, methods=["DELETE"]),
            ]
        )

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
            await self._act_then_lose_the_answer(drop, scope, receive, stamped_send)
        elif response is None:
            await self.app(scope, receive, stamped_send)
        else:
            await response(scope, receive, stamped_send)

    def _drop_for(self, scope: Any) -> str | None:
        for i, (method, path, how) in enumerate(self.dropped):
            if scope["method"] == method and scope["path"].endswith(path):
                del self.dropped[i]
                return how
        return None

    async def _act_then_lose_the_answer(self, how: str, scope: Any, receive: Any, send: Any) -> None:
        async def lost(message: Any) -> None:
            pass

        if how != "502-unsent":
            await self.app(scope, receive, lost)  # done: the run exists
        if how.startswith("502"):
            await Response(b"<html>502 Bad Gateway</html>", status_code=502, media_type="text/html")(
                scope, receive, send
            )
            return
        # "cut": an answer that declares more than it sends; over a real socket the connection ends mid-body
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"500")]})
        await send({"type": "http.response.body", "body": b'{"id": "exprun_', "more_body": False})

    def _seed_the_loop(self) -> None:
        """For the walkthrough: an experiment whose block was edited since its last run (so its metrics are
        stale), the edit making documents agree more; a run started now is short."""
        self.created_run_s = 6.0
        experiment_id = self.add_experiment(DEMO_LOOP_EXPERIMENT, documents=12)
        before = self.world.run(self.add_consensus_run(experiment_id, duration_s=240))
        assert before is not None
        before.created_t -= 3_600  # an hour ago
        self.edit_block(experiment_id, everywhere=0.05, fields={"invoice.total": 0.06})

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

    @property
    def run_ids(self) -> dict[str, str]:
        """Seeded runs by their role in the scenario ('latest', 'failed', 'young', ...)."""
        roles = ["older", "latest", "failed", "cancelled", "stale", "young", "long"]
        return {role: opaque_id("exprun", role) for role in roles}

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

    def add_run(
        self,
        *,
        duration_s: float = 40.0,
        queue_s: float = 2.0,
        documents: int | None = None,
        outcome: Outcome = "completed",
        end_fraction: float = 1.0,
        score: float | None = 0.9,
        run_id: str | None = None,
        document_errors: Mapping[int, tuple[str, str | None]] | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        experiment = self.world.experiments[0]
        if documents is not None:
            experiment = make_experiment(
                f"custom-{len(self.world.runs)}", documents=documents, epoch=self.world.wall(self.clock.now())
            )
            self.world.experiments.append(experiment)
        run = SimRun(
            id=run_id or opaque_id("exprun", f"added-{len(self.world.runs)}"),
            experiment=experiment,
            created_t=self.clock.now(),
            queue_s=queue_s,
            duration_s=duration_s,
            outcome=outcome,
            end_fraction=end_fraction,
            final_score=score if outcome == "completed" else None,
            error_message="Block 'Extract invoice' failed",
            error_code="MODEL_TIMEOUT",
            stack_trace="Traceback (most recent call last):\n  ...\nTimeoutError: model call timed out",
            cancel_reason="Cancelled by API request" if outcome == "cancelled" else None,
            document_errors=dict(document_errors or {}),
            parent_run_id=parent_run_id,
        )
        self.world.runs.append(run)
        self.added_runs.append(run.id)
        return run.id

    def drop_answer(
        self, method: str = "POST", path: str = "/runs", how: Literal["502", "cut", "502-unsent"] = "502"
    ) -> None:
        """Act on the next `method` request to a path ending in `path`, then lose its answer ("502": a proxy's
        error page, "cut": the connection cut mid-answer); "502-unsent": the proxy fails before the API acts."""
        self.dropped.append((method, path, how))

    def edit_block(
        self,
        experiment_id: str | None = None,
        *,
        everywhere: float = 0.0,
        documents: Mapping[int, float] | None = None,
        fields: Mapping[str, float] | None = None,
    ) -> str:
        """A new block configuration of the experiment (default: the first): runs started from now on
        score every document `everywhere` higher (negative: lower), the documents at the given indexes by
        their own amount instead, and the named fields by an extra amount. Returns the experiment id."""
        exp = self.world.experiment(experiment_id) if experiment_id else self.world.experiments[0]
        assert exp is not None
        ids = [d for d, _ in exp.documents]
        by_id = {ids[i]: delta for i, delta in (documents or {}).items()}
        exp.edits.append(BlockEdit(everywhere=everywhere, documents=by_id, fields=dict(fields or {})))
        exp.config = len(exp.edits)
        return exp.id

    def add_consensus_run(
        self, experiment_id: str | None = None, *, duration_s: float = 10.0, finished: bool = True
    ) -> str:
        """A run of the experiment's current block configuration, scored by the consensus model: completed
        already, or (`finished=False`) starting now and lasting `duration_s`."""
        exp = self.world.experiment(experiment_id) if experiment_id else self.world.experiments[0]
        assert exp is not None
        run = self._consensus_run(exp, duration_s=duration_s)
        if finished:
            run.created_t -= run.queue_s + duration_s + 1.0
        return run.id

    def add_experiment(
        self, name: str, *, documents: int = 12, n_consensus: int = 5, workflow_id: str | None = None
    ) -> str:
        exp = make_experiment(
            name,
            documents=documents,
            n_consensus=n_consensus,
            workflow_id=workflow_id,
            epoch=self.world.wall(self.clock.now()),
        )
        self.world.experiments.append(exp)
        return exp.id

    def add_worst_case_run(self, *, documents: int = 100, parent_run_id: str | None = None) -> str:
        """A run built to make results as large as they can get: it fails at 90 % with a 10 KB message and a
        1 MB stack trace, after every other document failed with its own 3 KB message, and every file has a
        300-character name. It starts now and ends 10 s later."""
        errors = {i: (f"{'x' * 3000} distinct failure {i}", "E" * 300) for i in range(0, documents, 2)}
        run_id = self.add_run(
            documents=documents,
            duration_s=10,
            queue_s=1,
            outcome="error",
            end_fraction=0.9,
            document_errors=errors,
            parent_run_id=parent_run_id,
        )
        run = self.world.run(run_id)
        assert run is not None
        named = [(d, "long-name-" * 30 + f"{i}.pdf") for i, (d, _) in enumerate(run.experiment.documents)]
        run.experiment.documents = named
        run.error_message = "m" * 10_000
        run.stack_trace = "\n".join("y" * 500 for _ in range(2000))
        return run_id

    # Middleware: recording, auth, injected faults, request ids

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
            return _http_exception(401, f"Invalid API key{quoted}")
        if key in self.forbidden_keys:
            return _http_exception(403, f"This API key{quoted} may not read workflow experiments")
        path = request.url.path
        run_id = (
            path[len(RUNS_PREFIX) :].split("/")[0]
            if path.startswith(RUNS_PREFIX)
            else request.query_params.get("run_id")
        )
        if run_id and self.owners.get(run_id, key) != key:
            return _not_found(run_id)
        for fault in self.faults:
            if fault.times > 0 and fault.path_contains in request.url.path:
                fault.times -= 1
                if fault.kind == "slow":
                    try:
                        await anyio.sleep(fault.delay_s)  # real time: it is the network that is slow
                    except anyio.get_cancelled_exc_class():
                        self.request_cancelled.set()
                        raise
                    return None
                if fault.kind == "malformed":
                    return Response(
                        fault.body or b"<html>502 Bad Gateway</html>",
                        status_code=200,
                        media_type="application/json",
                    )
                if fault.kind == "raw":
                    return Response(fault.body, status_code=fault.status, media_type=fault.media_type)
                if fault.kind == "truncated":
                    partial = fault.body or b'{"id": "exprun_cut", "lifecycle": {"sta'
                    declared = {"content-length": str(len(partial) * 4)}
                    return Response(partial, status_code=200, media_type="application/json", headers=declared)
                headers = {"retry-after": fault.retry_after} if fault.retry_after else None
                body = fault.body or (
                    {"detail": f"Rate limit exceeded for key{quoted}. Please try again later."}
                    if fault.status == 429
                    else {
                        "detail": {
                            "code": "HTTP_EXCEPTION",
                            "message": "An HTTP exception occurred.",
                            "details": {"error": f"Upstream service unavailable{quoted}"},
                        }
                    }
                )
                return JSONResponse(body, status_code=fault.status, headers=headers)
        return None

    # Endpoints

    async def _get_run(self, request: Request) -> Response:
        run = self.world.run(request.path_params["run_id"])
        if run is None:
            return _not_found(request.path_params["run_id"])
        return JSONResponse(run_body(self.world, run, self.clock.now()))

    async def _list_runs(self, request: Request) -> Response:
        q = request.query_params
        problem = (
            _check_enum(q, "status", RUN_STATUSES)
            or _check_enum(q, "exclude_status", RUN_STATUSES)
            or _check_enum(q, "order", ("asc", "desc"))
            or _check_limit(q, 100)
        )
        if problem:
            return problem
        now = self.clock.now()
        caller = request.headers.get("authorization", "")[7:].strip()
        seen = [r for r in self.world.runs if r.created_t <= now and self.owners.get(r.id, caller) == caller]
        bodies = [run_body(self.world, r, now) for r in seen]
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
        made = {r.id: i for i, r in enumerate(self.world.runs)}  # a tie in created_at goes by creation order
        bodies.sort(key=lambda b: (b["timing"]["created_at"], made[b["id"]]), reverse=q.get("order", "desc") == "desc")
        return _page(bodies, q, default_limit=20)

    async def _create_run(self, request: Request) -> Response:
        try:
            payload: Any = json.loads(await request.body())
        except ValueError:
            payload = None
        body = cast(dict[str, object], payload) if isinstance(payload, dict) else {}
        experiment_id = body.get("experiment_id")
        if not isinstance(experiment_id, str):
            return _validation_error(["body", "experiment_id"], "Field required", "missing")
        experiment = self.world.experiment(experiment_id)
        if experiment is None:
            return _http_exception(404, f"Experiment not found: {experiment_id}")
        workflow_id = body.get("workflow_id")
        if workflow_id is not None and workflow_id != experiment.workflow_id:
            return _http_exception(404, f"Experiment {experiment_id} not found in workflow {workflow_id}")
        run = self._consensus_run(experiment, duration_s=self.created_run_s)
        return JSONResponse(run_body(self.world, run, self.clock.now()), status_code=202)

    def _consensus_run(self, experiment: SimExperiment, *, duration_s: float) -> SimRun:
        run = SimRun(
            id=opaque_id("exprun", f"created-{len(self.world.runs)}"),
            experiment=experiment,
            created_t=self.clock.now(),
            duration_s=duration_s,
            config=experiment.config,
        )
        run.final_score = consensus_final_score(run)
        self.world.runs.append(run)
        self.added_runs.append(run.id)
        return run

    async def _cancel_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = self.world.run(run_id)
        now = self.clock.now()
        if run is None:
            return _not_found(run_id)
        status, _ = run.state_at(now)
        if status in ("completed", "error"):
            return _http_exception(404, f"Experiment run is already {status}: {run_id}")
        if status != "cancelled":
            run.cancel_requested_t = now
            run.cancel_reason = "Cancelled by API request"
        return JSONResponse({"id": run.id, "lifecycle": run_body(self.world, run, now)["lifecycle"]})

    async def _list_results(self, request: Request) -> Response:
        q = request.query_params
        problem = _check_limit(q, 1000) or _check_enum(q, "order", ("asc", "desc")) or _require(q, "run_id")
        if problem:
            return problem
        run = self.world.run(q["run_id"])
        if run is None:
            return _not_found(q["run_id"])
        now = self.clock.now()
        status, completed = run.state_at(now)
        rows = [result_body(self.world, run, index, status, completed) for index in range(run.total)]
        if q.get("order", "desc") == "desc":
            rows.reverse()
        return _page(rows, q, default_limit=100)

    async def _metrics(self, request: Request) -> Response:
        q = request.query_params
        problem = _require(q, "run_id") or _check_enum(q, "view", ("summary", "by_document", "by_target", "votes"))
        if problem:
            return problem
        run = self.world.run(q["run_id"])
        if run is None:
            return _not_found(q["run_id"])
        exp = run.experiment
        view = q.get("view", "summary")
        if run.metrics_stale:
            return JSONResponse(
                {
                    "kind": "stale_metrics",
                    "error": "stale_metrics",
                    "experiment_id": exp.id,
                    "stale_reasons": ["validity_changed"],
                    "last_run": {
                        "run_id": run.id,
                        "score": run.final_score,
                        "block_execution_fingerprint": None,
                    },
                    "current_block_execution_fingerprint": "0f3c9a1b7d2e4f60",
                    "message": "The experiment's block changed since this run; its metrics no longer apply.",
                }
            )
        status, completed = run.state_at(self.clock.now())
        scored = [(d, f) for i, (d, f) in enumerate(exp.documents[:completed]) if i not in run.document_errors]
        if not scored:
            return JSONResponse(
                {
                    "kind": "no_metrics",
                    "error": "no_metrics",
                    "experiment_id": exp.id,
                    "message": "No metrics yet: no document of this run has been scored.",
                }
            )
        parent = self.world.run(run.parent_run_id) if run.parent_run_id else None
        with_prior = q.get("include_prior", "true") != "false" and parent is not None
        docs: list[dict[str, Any]] = [
            {
                "id": d,
                "filename": f,
                "score": document_score(run, d),
                "prior_score": document_score(parent, d) if with_prior and parent else None,
            }
            for d, f in scored
        ]
        if view == "summary":
            return JSONResponse(
                {
                    "experiment_id": exp.id,
                    "run_id": run.id,
                    "kind": "summary",
                    "view": "summary",
                    "block_execution_fingerprint": None,
                    "block_type": exp.block_type,
                    "score": run.final_score if status == "completed" else None,
                    "prior_score": parent.final_score if with_prior and parent else None,
                    "documents": docs,
                    "scored_document_count": len(docs),
                    "total_document_count": run.total,
                    "aggregate": {"likelihoods": {t: round(0.7 + 0.05 * i, 3) for i, t in enumerate(TARGETS)}},
                    "prior_run_id": parent.id if with_prior and parent else None,
                }
            )
        document_id = q.get("document_id") or (exp.documents[0][0] if exp.documents else "")
        filename = dict(exp.documents).get(document_id)
        if filename is None:
            return _http_exception(404, f"Document not found in run: {document_id}")
        if view == "by_document":
            return JSONResponse(
                {
                    "run_id": run.id,
                    "kind": "by_document",
                    "view": "by_document",
                    "document": {"id": document_id, "filename": filename},
                    "score": document_score(run, document_id),
                    "prior_score": None,
                    "confusion": None,
                    "targets": [
                        {
                            "path": t,
                            "score": document_score(run, document_id, t),
                            "prior_score": None,
                            "value": None,
                        }
                        for t in TARGETS
                    ],
                }
            )
        target = q.get("target_path") or TARGETS[0]
        if view == "by_target":
            return JSONResponse(
                {
                    "run_id": run.id,
                    "kind": "by_target",
                    "view": "by_target",
                    "target": target,
                    "score": document_score(run, target),
                    "prior_score": None,
                    "confusion": None,
                    "documents": [
                        {
                            "id": d["id"],
                            "filename": d["filename"],
                            "score": document_score(run, d["id"], target),
                            "prior_score": None,
                            "value": None,
                        }
                        for d in docs
                    ],
                }
            )
        return JSONResponse(
            {
                "run_id": run.id,
                "kind": "votes",
                "view": "votes",
                "document": {"id": document_id, "filename": filename},
                "target": target,
                "score": document_score(run, document_id, target),
                "prior_score": None,
                "rows": [
                    {
                        "consensus": "1234.00",
                        "votes": ["1234.00"] * (exp.n_consensus - 1) + ["1.234,00"],
                        "score": 0.8,
                        "row_presence_score": 1.0,
                        "present_voter_count": exp.n_consensus,
                        "total_voter_count": exp.n_consensus,
                    }
                ],
            }
        )

    async def _list_experiments(self, request: Request) -> Response:
        q = request.query_params
        problem = _require(q, "workflow_id") or _check_limit(q, 100) or _check_enum(q, "order", ("asc", "desc"))
        if problem:
            return problem
        bodies = [self._experiment_body(e.id) for e in self.world.experiments if e.workflow_id == q["workflow_id"]]
        if q.get("block_id"):
            bodies = [b for b in bodies if b["block_id"] == q["block_id"]]
        return _page(bodies, q, default_limit=50)

    async def _create_experiment(self, request: Request) -> Response:
        body = await _json_object(request)
        workflow_id = body.get("workflow_id")
        if not isinstance(workflow_id, str):
            return _validation_error(["body", "workflow_id"], "Field required", "missing")
        n_consensus = body.get("n_consensus", 5)
        if n_consensus not in (3, 5, 7):
            return _validation_error(["body", "n_consensus"], "Input should be 3, 5 or 7", "enum")
        documents = body.get("documents")
        name = str(body.get("name") or f"experiment-{len(self.world.experiments)}")
        experiment = make_experiment(
            name,
            documents=len(cast(list[object], documents)) if isinstance(documents, list) else 12,
            n_consensus=int(cast(int, n_consensus)),
            workflow_id=workflow_id,
            epoch=self.world.wall(self.clock.now()),
        )
        self.world.experiments.append(experiment)
        return JSONResponse(self._experiment_body(experiment.id), status_code=201)

    async def _update_experiment(self, request: Request) -> Response:
        experiment = self.world.experiment(request.path_params["experiment_id"])
        if experiment is None:
            return _http_exception(404, f"Experiment not found: {request.path_params['experiment_id']}")
        body = await _json_object(request)
        if body.get("n_consensus") is not None:
            if body["n_consensus"] not in (3, 5, 7):
                return _validation_error(["body", "n_consensus"], "Input should be 3, 5 or 7", "enum")
            experiment.n_consensus = int(cast(int, body["n_consensus"]))
            # A new consensus count is a new block configuration: the last run's metrics go stale.
            experiment.edits.append(BlockEdit())
            experiment.config = len(experiment.edits)
        if isinstance(body.get("name"), str):
            experiment.name = str(body["name"])
        return JSONResponse(self._experiment_body(experiment.id))

    async def _delete_experiment(self, request: Request) -> Response:
        experiment = self.world.experiment(request.path_params["experiment_id"])
        if experiment is None:
            return _http_exception(404, f"Experiment not found: {request.path_params['experiment_id']}")
        self.world.experiments.remove(experiment)
        self.world.runs = [run for run in self.world.runs if run.experiment is not experiment]
        return Response(status_code=204)

    async def _get_result(self, request: Request) -> Response:
        result_id = request.path_params["result_id"]
        now = self.clock.now()
        for run in self.world.runs:
            status, completed = run.state_at(now)
            for index in range(run.total):
                body = result_body(self.world, run, index, status, completed)
                if body["id"] == result_id:
                    return JSONResponse(body)
        return _http_exception(404, f"Experiment result not found: {result_id}")

    async def _get_experiment(self, request: Request) -> Response:
        experiment_id = request.path_params["experiment_id"]
        if self.world.experiment(experiment_id) is None:
            return _http_exception(404, f"Experiment not found: {experiment_id}")
        return JSONResponse(self._experiment_body(experiment_id))

    def _experiment_body(self, experiment_id: str) -> dict[str, Any]:
        exp = self.world.experiment(experiment_id)
        assert exp is not None
        now = self.clock.now()
        runs = sorted(
            (r for r in self.world.runs if r.experiment is exp and r.created_t <= now),
            key=lambda r: r.created_t,
        )
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


async def _json_object(request: Request) -> dict[str, object]:
    try:
        payload: Any = json.loads(await request.body())
    except ValueError:
        payload = None
    return cast(dict[str, object], payload) if isinstance(payload, dict) else {}


def _http_exception(status: int, error: str) -> JSONResponse:
    return JSONResponse(
        {
            "detail": {
                "code": "HTTP_EXCEPTION",
                "message": "An HTTP exception occurred.",
                "details": {"error": error},
            }
        },
        status_code=status,
    )


def _not_found(run_id: str) -> JSONResponse:
    return _http_exception(404, f"Experiment run not found: {run_id}")


def _validation_error(loc: list[str], msg: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": kind}]}, status_code=422)


def _require(q: Any, name: str) -> JSONResponse | None:
    return None if q.get(name) else _validation_error(["query", name], "Field required", "missing")


def _check_enum(q: Any, name: str, allowed: tuple[str, ...]) -> JSONResponse | None:
    value = q.get(name)
    if value is None or value in allowed:
        return None
    return _validation_error(["query", name], f"Input should be {', '.join(repr(a) for a in allowed)}", "enum")


def _check_limit(q: Any, maximum: int) -> JSONResponse | None:
    raw = q.get("limit")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return _validation_error(["query", "limit"], "Input should be a valid integer", "int_parsing")
    if not 1 <= value <= maximum:
        return _validation_error(["query", "limit"], f"Input should be between 1 and {maximum}", "less_than_equal")
    return None


def _page(items: list[dict[str, Any]], q: Any, *, default_limit: int) -> Response:
    """Keyset pagination: `after` is the id of the last item of the previous page; `before`, of the first
    item of the next page (the page before it is answered)."""
    limit = int(q.get("limit") or default_limit)
    ids = [item["id"] for item in items]
    after, before = q.get("after"), q.get("before")
    for name, cursor in (("after", after), ("before", before)):
        if cursor and cursor not in ids:
            return _validation_error(["query", name], "Cursor is stale or does not belong to this list", "value_error")
    if after:
        start = ids.index(after) + 1
    elif before:
        start = max(0, ids.index(before) - limit)
    else:
        start = 0
    end = min(start + limit, ids.index(before) if before and not after else len(items))
    page = items[start:end]
    return JSONResponse(
        {
            "data": page,
            "list_metadata": {
                "before": page[0]["id"] if page and start > 0 else None,
                "after": page[-1]["id"] if page and end < len(items) else None,
            },
        }
    )
