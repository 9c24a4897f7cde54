"""Waiting for a run to finish: a bounded, observable poll loop.

The schedule (`PollSchedule`) polls a young run every 2 s, so an early failure is seen within 2 s, then
less often as the run ages (every 20 % of its age, at most every 8 s), and densely again near the end its
throughput predicts, so a run that ends when predicted is seen within about a second. Against the 2 s
polling of Retab's CLI this sends fewer requests on every run and sees predicted ends sooner; the price is
a later notice (up to 8 s) of a failure in the middle of an old run. BENCHMARKS.md has the numbers.

Errors while waiting follow Retab's CLI: 5xx, 429 and network errors are retried until the deadline;
401, 403, 400 and 422 end the wait at once; a 404 ends it after three in a row (a run just created may
not be readable yet).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import anyio

from .client import RetabClient
from .clock import Clock
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RetabError,
    ServerStoppingError,
)
from .statuses import RUNNING

if TYPE_CHECKING:
    from .models import Run
from .summaries import estimate_remaining_s

ProgressCallback = Callable[[float, float | None, str], Awaitable[None]]

SHUTDOWN_MESSAGE = "the server is shutting down; call again once it is back"
TRANSIENT_ERRORS = (InternalServerError, RateLimitError, APIConnectionError, APIResponseValidationError)
NOT_FOUND_LIMIT = 3


@dataclass(frozen=True)
class PollSchedule:
    young_delay_s: float = 2.0  # a run younger than young_age_s is polled this often
    young_age_s: float = 10.0
    ageing: float = 0.2  # afterwards the delay may grow to this fraction of the run's age...
    max_delay_s: float = 8.0  # ...but never beyond this
    min_delay_s: float = 1.0
    eta_fraction: float = 0.3  # near the predicted end, poll at this fraction of the time left
    error_delay_s: float = 2.0

    def delay_after(self, run: Run, now: datetime) -> float:
        """Seconds until the next poll of `run`, seen unfinished at wall time `now`."""
        created = run.timing.created_at
        age = (now - created).total_seconds() if created else 0.0
        ceiling = self.young_delay_s if age < self.young_age_s else min(self.max_delay_s, age * self.ageing)
        ceiling = max(ceiling, self.young_delay_s)
        if (
            run.status == RUNNING
            and run.total_document_count
            and (run.completed_document_count >= run.total_document_count)
        ):
            return self.min_delay_s  # every document is done: scoring ends the run any moment
        eta = estimate_remaining_s(run, now)
        if eta is not None:
            return max(self.min_delay_s, min(ceiling, eta * self.eta_fraction))
        return ceiling


@dataclass
class WaitOutcome:
    run: Run | None  # the last state read, None only if no poll ever succeeded
    timed_out: bool
    waited_s: float
    warning: str | None


async def wait_for_finish(
    client: RetabClient,
    run_id: str,
    *,
    timeout_s: float,
    clock: Clock,
    on_progress: ProgressCallback | None = None,
    on_state: Callable[[Run], None] | None = None,
    schedule: PollSchedule | None = None,
    final_poll_margin_s: float = 0.25,
    stop: anyio.Event | None = None,
) -> WaitOutcome:
    """Poll until the run finishes or `timeout_s` passes; a request in flight is bounded by the deadline.

    `on_state` sees every state read, so a caller that cancels the wait still knows the last one.
    When `stop` is set (the server is shutting down) the wait ends at once with the last state read.

    Raises the client's error when the wait cannot go on (auth, bad request, unknown run), and when the
    deadline comes before any successful poll.
    """
    schedule = schedule or PollSchedule()
    start = clock.now()
    deadline = start + timeout_s
    last: Run | None = None
    last_error: RetabError | None = None
    not_found_streak = 0
    progress_sent = -1.0

    def outcome(timed_out: bool, warning: str | None = None) -> WaitOutcome:
        return WaitOutcome(last, timed_out, round(clock.now() - start, 1), warning)

    while True:
        run: Run | None = None
        delay = schedule.error_delay_s
        with anyio.move_on_after(max(0.0, deadline - clock.now())) as request_scope:
            try:
                run = await client.get_run(run_id, retry=False)
            except NotFoundError as error:
                not_found_streak += 1
                if not_found_streak >= NOT_FOUND_LIMIT:
                    raise
                last_error, delay = error, schedule.min_delay_s
            except TRANSIENT_ERRORS as error:
                last_error = error
                if isinstance(error, RateLimitError) and error.retry_after_s:
                    delay = max(delay, error.retry_after_s)
        if request_scope.cancelled_caught:
            silent = APITimeoutError(
                f"The Retab API at {client.settings.base_url} did not answer before the wait's deadline.",
                url=client.settings.base_url,
            )
            return _give_up(outcome, last, "the API did not answer before the deadline", silent)
        if run is not None:
            last, last_error, not_found_streak = run, None, 0
            if on_state is not None:
                on_state(run)
            if run.completed_document_count > progress_sent and on_progress is not None:
                progress_sent = float(run.completed_document_count)
                total = float(run.total_document_count) if run.total_document_count else None
                await on_progress(progress_sent, total, _progress_message(run))
            if run.lifecycle.is_terminal:
                return outcome(timed_out=False)
            delay = schedule.delay_after(run, clock.wall_at(clock.now()))
        remaining = deadline - clock.now() - final_poll_margin_s
        if remaining <= 0:
            if last_error is not None:  # also the case when no poll ever succeeded
                return _give_up(outcome, last, f"the last poll failed: {last_error}", last_error)
            return outcome(timed_out=True)
        if await _sleep_unless_stopped(clock, min(delay, remaining), stop):
            if last is None:
                raise ServerStoppingError(SHUTDOWN_MESSAGE)
            return outcome(timed_out=True, warning=SHUTDOWN_MESSAGE)


async def _sleep_unless_stopped(clock: Clock, seconds: float, stop: anyio.Event | None) -> bool:
    """Sleep `seconds`; True (at once) if `stop` is or becomes set."""
    if stop is None:
        await clock.sleep(seconds)
        return False
    if stop.is_set():
        return True
    async with anyio.create_task_group() as group:

        async def end_sleep_on_stop() -> None:
            await stop.wait()
            group.cancel_scope.cancel()

        group.start_soon(end_sleep_on_stop)
        await clock.sleep(seconds)
        group.cancel_scope.cancel()
    return stop.is_set()


def _give_up(outcome: Callable[..., WaitOutcome], last: Run | None, warning: str, error: RetabError) -> WaitOutcome:
    if last is None:
        raise error
    return outcome(timed_out=True, warning=f"{warning}; state shown is the last one read")


def _progress_message(run: Run) -> str:
    return f"{run.status} · {run.completed_document_count}/{run.total_document_count} docs"
