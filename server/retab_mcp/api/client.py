"""Async client for the Retab API's runs: experiment runs, workflow runs (with their steps and review
gates) and eval runs (with their results).

One pooled `httpx2.AsyncClient` per `RetabClient`. Every failure becomes an error of `errors.py`; GETs are
retried by `retry.RetryPolicy`, POSTs never, and all attempts of a request end by the call's deadline when
one is set (`call_deadline`). Ids are checked before they are put into a request, so a bad id sends nothing.

The HTTP stack and the API's models are imported, and the pooled client (with its TLS context: tens of
milliseconds) is built, on the first request rather than at start: a host waits for `initialize` before
anything else, and a server that is never called never pays for them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
from pydantic import BaseModel, ValidationError

from .. import __version__
from ..base import telemetry
from ..base.config import MISSING_KEY_MESSAGE, PLACEHOLDER_KEY_MESSAGE, Settings, placeholder_key
from ..base.redaction import Redactor
from ..base.text import clip
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    CallDeadlineError,
    InvalidIdError,
    MissingAPIKeyError,
    RetabError,
    status_error,
)
from .retry import NO_RETRY, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    import httpx2

    from .evals import Eval, EvalResult, EvalRun
    from .models import Experiment, Lifecycle, Metrics, Page, Result, Run
    from .workflows import Review, Step, WorkflowRun

logger = logging.getLogger(__name__)

EXPERIMENTS = "/v1/workflows/experiments"
WORKFLOW_RUNS = "/v1/workflows/runs"
EVALS = "/v1/workflows/evals"
EVAL_RUNS = f"{EVALS}/runs"
USER_AGENT = f"retab-mcp/{__version__}"
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

MetricsView = Literal["summary", "by_document", "by_target", "votes"]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Deadline:
    at: float  # anyio.current_time() by which the call must have its answer
    seconds: float  # as configured, for messages

    def remaining(self) -> float:
        return self.at - anyio.current_time()


_DEADLINE: ContextVar[Deadline | None] = ContextVar("retab_call_deadline", default=None)


@contextmanager
def call_deadline(seconds: float | None) -> Generator[None]:
    """Every request made inside (by this task and the tasks it starts) ends by `seconds` from now, all
    attempts and sleeps between them together; None lifts the bound (a poll loop that outlives its
    starter). Past it, requests raise CallDeadlineError."""
    token = _DEADLINE.set(None if seconds is None else Deadline(anyio.current_time() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_id(value: str, kind: str = "run id") -> str:
    """Return `value` if it may be used in a request, else raise InvalidIdError."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidIdError(kind, str(value))
    return value


def http_pool(settings: Settings, transport: httpx2.AsyncBaseTransport | None = None) -> httpx2.AsyncClient:
    """The pooled HTTP client requests go through. It carries no key: each request sends its own, so one
    pool serves every caller's key (with per-user keys, a thousand callers share one pool and TLS context)."""
    import httpx2

    return httpx2.AsyncClient(
        base_url=settings.base_url,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        transport=transport,
        timeout=httpx2.Timeout(
            settings.read_timeout_s, connect=settings.connect_timeout_s, pool=settings.connect_timeout_s
        ),
        limits=httpx2.Limits(max_connections=20, max_keepalive_connections=10),
        follow_redirects=False,
    )


class RetabClient:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        pool: httpx2.AsyncClient | None = None,
    ) -> None:
        """`pool`: a pool of the caller's (`http_pool`), shared with other clients and not closed by this
        one; without it, the client makes a pool of its own on its first request."""
        self.settings = settings
        self.retry = retry or RetryPolicy.from_settings(settings)
        self._redact = Redactor([settings.api_key])
        self._transport = transport
        self._client: httpx2.AsyncClient | None = pool
        self._owns_pool = pool is None
        self._auth = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}

    @property
    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = http_pool(self.settings, self._transport)
        return self._client

    async def unreachable(self) -> str | None:
        """None if the API answers at all (any status below 500: a 401 is an answer); else why not.
        For readiness probes: one request, no retry, within the connect and read timeouts."""
        try:
            response = await self._send_once("GET", f"{EXPERIMENTS}/runs", {"limit": 1}, None)
        except RetabError as error:
            status = getattr(error, "status_code", None)
            if status is not None and status < 500:
                return None
            return clip(self._redact.text(str(error)), 200)
        del response
        return None

    async def __aenter__(self) -> RetabClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None and self._owns_pool:
            await self._client.aclose()

    # Runs

    async def get_run(self, run_id: str, *, retry: bool = True) -> Run:
        """One run. `retry=False` makes a single attempt, for callers that retry on their own schedule."""
        from .models import Run

        path = f"{EXPERIMENTS}/runs/{check_id(run_id)}"
        response = await self._request("GET", path, retry=self.retry if retry else NO_RETRY)
        return self._parse(Run, response)

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        experiment_id: str | None = None,
        block_id: str | None = None,
        status: str | None = None,
        exclude_status: str | None = None,
        trigger_type: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        sort_by: str | None = None,
        order: Literal["asc", "desc"] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[Run]:
        params = {
            "workflow_id": _opt_id(workflow_id, "workflow id"),
            "experiment_id": _opt_id(experiment_id, "experiment id"),
            "block_id": _opt_id(block_id, "block id"),
            "status": status,
            "exclude_status": exclude_status,
            "trigger_type": trigger_type,
            "from_date": from_date,
            "to_date": to_date,
            "sort_by": sort_by,
            "order": order,
            "limit": limit,
            "after": after,
        }
        from .models import Page, Run

        response = await self._request("GET", f"{EXPERIMENTS}/runs", params=params)
        return self._parse(Page[Run], response)

    async def cancel_run(self, run_id: str) -> Lifecycle:
        """Ask Retab to cancel a run. Sent once: a POST is never retried."""
        from .models import CancelResponse

        path = f"{EXPERIMENTS}/runs/{check_id(run_id)}/cancel"
        response = await self._request("POST", path, retry=NO_RETRY)
        return self._parse(CancelResponse, response).lifecycle

    async def create_run(self, experiment_id: str, workflow_id: str | None = None) -> Run:
        """Start a run of the experiment. Sent once, never retried: a retry after an answer lost on the way
        back would start a second run (errors.outcome_unknown says when that may have happened)."""
        from .models import Run

        body = {"experiment_id": check_id(experiment_id, "experiment id")}
        if workflow_id:
            body["workflow_id"] = check_id(workflow_id, "workflow id")
        response = await self._request("POST", f"{EXPERIMENTS}/runs", json=body, retry=NO_RETRY)
        return self._parse(Run, response)

    # Results and metrics

    async def list_results(
        self,
        run_id: str,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Literal["asc", "desc"] | None = None,
    ) -> Page[Result]:
        params = {"run_id": check_id(run_id), "limit": limit, "after": after, "order": order}
        from .models import Page, Result

        response = await self._request("GET", f"{EXPERIMENTS}/results", params=params)
        return self._parse(Page[Result], response)

    async def get_metrics(
        self,
        run_id: str,
        view: MetricsView = "summary",
        *,
        document_id: str | None = None,
        target_path: str | None = None,
        include_prior: bool | None = None,
        prior_run_id: str | None = None,
    ) -> Metrics:
        params = {
            "run_id": check_id(run_id),
            "view": view,
            "document_id": _opt_id(document_id, "document id"),
            "target_path": target_path,
            "include_prior": None if include_prior is None else str(include_prior).lower(),
            "prior_run_id": _opt_id(prior_run_id, "run id"),
        }
        from .models import Metrics

        response = await self._request("GET", f"{EXPERIMENTS}/metrics", params=params)
        return self._parse(Metrics, response)

    async def list_experiments(
        self, workflow_id: str, *, limit: int | None = None, after: str | None = None
    ) -> Page[Experiment]:
        from .models import Experiment, Page

        params = {"workflow_id": check_id(workflow_id, "workflow id"), "limit": limit, "after": after}
        return self._parse(Page[Experiment], await self._request("GET", EXPERIMENTS, params=params))

    async def get_experiment(self, experiment_id: str) -> Experiment:
        from .models import Experiment

        path = f"{EXPERIMENTS}/{check_id(experiment_id, 'experiment id')}"
        return self._parse(Experiment, await self._request("GET", path))

    # Workflow runs: production runs, their steps and review gates

    async def get_workflow_run(self, run_id: str, *, retry: bool = True) -> WorkflowRun:
        from .workflows import WorkflowRun

        path = f"{WORKFLOW_RUNS}/{check_id(run_id)}"
        return self._parse(WorkflowRun, await self._request("GET", path, retry=self.retry if retry else NO_RETRY))

    async def list_workflow_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        exclude_status: str | None = None,
        trigger_type: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        search: str | None = None,
        order: Literal["asc", "desc"] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[WorkflowRun]:
        from .models import Page
        from .workflows import WorkflowRun

        params = {
            "workflow_id": _opt_id(workflow_id, "workflow id"),
            "status": status,
            "exclude_status": exclude_status,
            "trigger_type": trigger_type,
            "from_date": from_date,
            "to_date": to_date,
            "search": search,
            "order": order,
            "limit": limit,
            "after": after,
        }
        return self._parse(Page[WorkflowRun], await self._request("GET", WORKFLOW_RUNS, params=params))

    async def cancel_workflow_run(self, run_id: str) -> WorkflowRun:
        """Ask Retab to cancel a workflow run. Sent once: a POST is never retried."""
        from .workflows import CancelWorkflowResponse

        path = f"{WORKFLOW_RUNS}/{check_id(run_id)}/cancel"
        return self._parse(CancelWorkflowResponse, await self._request("POST", path, retry=NO_RETRY)).run

    async def list_steps(
        self, run_id: str, *, status: str | None = None, limit: int | None = None, after: str | None = None
    ) -> Page[Step]:
        from .models import Page
        from .workflows import Step

        params = {"run_id": check_id(run_id), "status": status, "limit": limit, "after": after}
        return self._parse(Page[Step], await self._request("GET", "/v1/workflows/steps", params=params))

    async def list_reviews(
        self, run_id: str, *, decision_status: str | None = "pending", limit: int | None = None
    ) -> Page[Review]:
        from .models import Page
        from .workflows import Review

        params = {"run_id": check_id(run_id), "decision_status": decision_status, "limit": limit}
        return self._parse(Page[Review], await self._request("GET", "/v1/workflows/reviews", params=params))

    # Eval runs: regression checks with expected outputs

    async def get_eval_run(self, run_id: str, *, retry: bool = True) -> EvalRun:
        from .evals import EvalRun

        path = f"{EVAL_RUNS}/{check_id(run_id)}"
        return self._parse(EvalRun, await self._request("GET", path, retry=self.retry if retry else NO_RETRY))

    async def list_eval_runs(
        self,
        *,
        workflow_id: str | None = None,
        eval_id: str | None = None,
        target_block_id: str | None = None,
        status: str | None = None,
        order: Literal["asc", "desc"] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[EvalRun]:
        from .evals import EvalRun
        from .models import Page

        params = {
            "workflow_id": _opt_id(workflow_id, "workflow id"),
            "eval_id": _opt_id(eval_id, "eval id"),
            "target_block_id": _opt_id(target_block_id, "block id"),
            "status": status,
            "order": order,
            "limit": limit,
            "after": after,
        }
        return self._parse(Page[EvalRun], await self._request("GET", EVAL_RUNS, params=params))

    async def create_eval_run(self, workflow_id: str, scope: Mapping[str, str] | None = None) -> EvalRun:
        """Start an eval run. Sent once, never retried (a second run would be billed too)."""
        from .evals import EvalRun

        body: dict[str, Any] = {"workflow_id": check_id(workflow_id, "workflow id")}
        if scope is not None:
            body["scope"] = dict(scope)
        return self._parse(EvalRun, await self._request("POST", EVAL_RUNS, json=body, retry=NO_RETRY))

    async def cancel_eval_run(self, run_id: str) -> EvalRun:
        from .evals import EvalRun

        path = f"{EVAL_RUNS}/{check_id(run_id)}/cancel"
        return self._parse(EvalRun, await self._request("POST", path, retry=NO_RETRY))

    async def list_eval_results(
        self, run_id: str, *, limit: int | None = None, after: str | None = None
    ) -> Page[EvalResult]:
        from .evals import EvalResult
        from .models import Page

        params = {"run_id": check_id(run_id), "limit": limit, "after": after}
        return self._parse(Page[EvalResult], await self._request("GET", f"{EVALS}/results", params=params))

    async def list_evals(self, workflow_id: str, *, limit: int | None = None, after: str | None = None) -> Page[Eval]:
        from .evals import Eval
        from .models import Page

        params = {"workflow_id": check_id(workflow_id, "workflow id"), "limit": limit, "after": after}
        return self._parse(Page[Eval], await self._request("GET", EVALS, params=params))

    # Plumbing

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> httpx2.Response:
        if not self.settings.api_key:
            raise MissingAPIKeyError(MISSING_KEY_MESSAGE)
        if placeholder_key(self.settings.api_key):
            # Said at once: a placeholder would only earn a 401 after a network round trip.
            raise MissingAPIKeyError(PLACEHOLDER_KEY_MESSAGE)
        policy = retry or self.retry
        query = {k: v for k, v in (params or {}).items() if v is not None}
        deadline = _DEADLINE.get()
        started = anyio.current_time()
        attempts: list[str] = []
        attempt, slept = 0, 0.0
        while True:
            try:
                return await self._send_once(method, path, query, deadline, json)
            except RetabError as error:
                attempt += 1
                attempts.append(_attempt_text(error))
                delay = policy.delay_before_retry(error, attempt, slept)
                out_of_time = deadline is not None and (delay or 0.0) >= deadline.remaining()
                if out_of_time and (delay is not None or isinstance(error, APITimeoutError)):
                    assert deadline is not None
                    raise CallDeadlineError(
                        url=self.settings.base_url,
                        deadline_s=deadline.seconds,
                        elapsed_s=anyio.current_time() - started,
                        attempts=attempts,
                    ) from None
                if delay is None:
                    raise
                # INFO, not WARNING: an outage would write a line per retry of every call; the operator's
                # WARNING is the watcher's one line when the API starts failing (watch/watcher.py).
                logger.info("%s %s failed (%s); retry %d in %.1fs", method, path, error, attempt, delay)
                await policy.sleep(delay)
                slept += delay

    async def _send_once(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any],
        deadline: Deadline | None,
        json: Mapping[str, Any] | None = None,
    ) -> httpx2.Response:
        import httpx2

        try:
            # The read timeout bounds each read, not a whole answer: an API that trickles bytes would
            # hold a request for ever without this bound.
            with anyio.fail_after(None if deadline is None else max(0.0, deadline.remaining())):
                response = await self._http.request(method, path, params=query, json=json, headers=self._auth)
        except TimeoutError:
            telemetry.api_answered(None, None)
            raise APITimeoutError(
                f"The Retab API at {self.settings.base_url} did not answer before the call's deadline.",
                url=self.settings.base_url,
            ) from None
        except httpx2.TimeoutException as exc:
            telemetry.api_answered(None, None)
            raise APITimeoutError(
                f"The Retab API at {self.settings.base_url} did not answer in time ({type(exc).__name__}).",
                url=self.settings.base_url,
            ) from None
        except httpx2.TransportError as exc:
            telemetry.api_answered(None, None)
            raise APIConnectionError(
                f"Could not reach the Retab API at {self.settings.base_url} ({type(exc).__name__}).",
                url=self.settings.base_url,
            ) from None
        telemetry.api_answered(response.status_code, response.headers.get("x-request-id"))
        if response.is_success:
            return response
        raise status_error(
            response.status_code,
            response.content,
            request_id=response.headers.get("x-request-id"),
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
            redact=self._redact.text,
        )

    def _parse(self, model: type[ModelT], response: httpx2.Response) -> ModelT:
        request_id = response.headers.get("x-request-id")
        # The errors' text is redacted here, so that no log line carries the key; what a run holds (its
        # message, its trace) is redacted where it is shown (redaction.py).
        content = response.content
        excerpt = self._redact.text(content[:160].decode("utf-8", "replace"))
        try:
            return model.model_validate_json(content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            name = "page" if "[" in model.__name__ else model.__name__  # Page[Run] reads better as "page"
            reason = "not JSON" if first["type"] == "json_invalid" else f"{where}: {first['msg']}"
            raise APIResponseValidationError(
                f"The Retab API sent a {name} that cannot be read ({reason})",
                status_code=response.status_code,
                request_id=request_id,
                excerpt=excerpt,
            ) from None


def _attempt_text(error: RetabError) -> str:
    """A few words for one failed attempt, for the message that lists them."""
    if isinstance(error, APITimeoutError):
        return "no answer in time"
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, APIConnectionError):
        return "connection failed"
    return type(error).__name__


def _opt_id(value: str | None, kind: str) -> str | None:
    return None if value is None else check_id(value, kind)
