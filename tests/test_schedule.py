"""When the poll loop looks at a run: the schedule on its own, then the reaction it gives through the tools.

Time is virtual: the waits and the simulated API share one clock, so reaction times are exact.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client

from retab_mcp.api.models import Run
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import Outcome
from retab_mcp.watch.schedule import Pace, PollSchedule

from .helpers import call, data_of

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SCHEDULE = PollSchedule()
YOUNG_REACTION_S = 2.0  # what a 2 s fixed poller guarantees, and what a run under a minute gets


def run_read(*, age_s: float, status: str = "running", done: int = 0, total: int = 100, queued_s: float = 2) -> Run:
    """A run as read at NOW, created `age_s` ago, running since `queued_s` after that."""
    created = NOW - timedelta(seconds=age_s)
    started = created + timedelta(seconds=queued_s) if status == "running" else None
    return Run.model_validate(
        {
            "id": "exprun_schedule",
            "lifecycle": {"status": status},
            "timing": {"created_at": created.isoformat(), "started_at": started and started.isoformat()},
            "completed_document_count": done,
            "total_document_count": total,
        }
    )


# The schedule on its own


@pytest.mark.parametrize("status", ["pending", "queued", "running"])
@pytest.mark.parametrize("age_s", [0, 5, 30, 59])
def test_a_run_younger_than_a_minute_is_polled_at_least_every_1_9_s(status: str, age_s: float) -> None:
    run = run_read(age_s=age_s, status=status, done=1 if status == "running" else 0, total=100)
    assert 1.0 <= SCHEDULE.delay_after(run, NOW, Pace()) <= 1.9


def test_an_older_run_far_from_its_end_waits_longer_but_at_most_35_percent_of_its_age() -> None:
    pace = Pace()
    run = run_read(age_s=100, done=10, total=100)  # 10 documents in 98 s: ~880 s to go
    delay = SCHEDULE.delay_after(run, NOW, pace)
    assert 2.0 < delay <= 0.35 * 100


def test_an_old_run_waits_at_most_30_s() -> None:
    assert SCHEDULE.delay_after(run_read(age_s=3_000, done=1, total=1_000), NOW, Pace()) == 30.0


def test_an_older_run_near_its_predicted_end_is_polled_in_steps_of_9_percent_of_its_age() -> None:
    pace = Pace()
    pace.add(100.0, 10)  # an earlier reading: 10 documents after 100 s
    run = run_read(age_s=202, done=19, total=20)  # 19 of 20 after 200 s: the end is near
    delay = SCHEDULE.delay_after(run, NOW, pace)
    assert 1.0 <= delay <= 0.09 * 202 + 1e-9


def test_a_pending_older_run_waits_a_fraction_of_its_age() -> None:
    assert SCHEDULE.delay_after(run_read(age_s=70, status="queued"), NOW, Pace()) == pytest.approx(0.35 * 70)


def test_a_run_with_every_document_in_is_polled_in_short_steps_while_it_scores() -> None:
    assert SCHEDULE.delay_after(run_read(age_s=400, done=50, total=50), NOW, Pace()) <= 1.9


def test_pace_intersects_its_readings() -> None:
    pace = Pace()
    pace.add(10.0, 1)  # one document took more than 5 s and at most 10 s
    pace.add(30.0, 4)  # more than 6 s and at most 7.5 s
    assert pace.per_document_s() == (6.0, 7.5)


def test_pace_trusts_the_latest_reading_when_the_run_changed_speed() -> None:
    pace = Pace()
    pace.add(10.0, 9)  # about 1 s a document...
    pace.add(100.0, 10)  # ...then it slowed down: the bounds no longer intersect
    assert pace.per_document_s() == (100.0 / 11, 10.0)


def test_pace_knows_nothing_before_a_document_is_done() -> None:
    pace = Pace()
    pace.add(10.0, 0)
    lo, hi = pace.per_document_s()
    assert lo == 10.0 and math.isinf(hi)


# Reaction through the tools: a run that ends 1 to 10 s after it was first seen is returned within 2 s


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def add_run(sim: SimulatedRetab, clock: VirtualClock, kind: str, ends_after_s: float, outcome: Outcome) -> str:
    """A run first seen now, ending `ends_after_s` later: young (created now), jumping from pending to its
    end, or first seen already running (created 20 s ago)."""
    if kind == "jumps from pending":
        return sim.add_run(queue_s=ends_after_s, duration_s=0.001, documents=3, outcome=outcome)
    if kind == "first seen running":
        run_id = sim.add_run(queue_s=2, duration_s=20 + ends_after_s - 2, documents=10, outcome=outcome)
        clock.advance(20)
        return run_id
    return sim.add_run(queue_s=0.5, duration_s=ends_after_s - 0.5, documents=5, outcome=outcome)


def ended_at(sim: SimulatedRetab, clock: VirtualClock, run_id: str) -> float:
    run = sim.world.run(run_id)
    assert run is not None
    ended = run.ended_t(clock.now())
    assert ended is not None, "the run had not ended"
    return ended


KINDS = ["young", "jumps from pending", "first seen running"]
ENDS_AFTER = [1, 2, 3, 5, 6, 8, 10]


@pytest.mark.anyio
@pytest.mark.parametrize("outcome", ["completed", "error"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ends_after_s", ENDS_AFTER)
@pytest.mark.slow
async def test_wait_for_run_returns_a_young_run_within_2_s_of_its_end(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock, kind: str, ends_after_s: float, outcome: Outcome
) -> None:
    run_id = add_run(sim, clock, kind, ends_after_s, outcome)
    data = data_of(await call(mcp_client, "wait_for_run", run_id=run_id, timeout_s=45))
    assert data["finished"] is True and data["status"] == outcome
    assert clock.now() - ended_at(sim, clock, run_id) <= YOUNG_REACTION_S


@pytest.mark.anyio
@pytest.mark.parametrize("batch_mode", ["all", "any"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ends_after_s", ENDS_AFTER)
@pytest.mark.slow
async def test_wait_for_runs_returns_a_young_run_within_2_s_of_its_end(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock, kind: str, ends_after_s: float, batch_mode: str
) -> None:
    run_id = add_run(sim, clock, kind, ends_after_s, "completed")
    run_ids = [run_id] if batch_mode == "all" else [sim.run_ids["long"], run_id]
    data: dict[str, Any] = data_of(await call(mcp_client, "wait_for_runs", run_ids=run_ids, mode=batch_mode))
    assert data["done"] is True and data["runs"][-1]["status"] == "completed"
    assert clock.now() - ended_at(sim, clock, run_id) <= YOUNG_REACTION_S


@pytest.mark.anyio
async def test_a_cancelled_young_run_is_seen_within_2_s(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.add_run(queue_s=1, duration_s=30, documents=5)
    sim.world.run(run_id).cancel_requested_t = clock.now() + 4.3  # type: ignore[union-attr]
    data = data_of(await call(mcp_client, "wait_for_run", run_id=run_id, timeout_s=45))
    assert data["status"] == "cancelled"
    assert clock.now() - ended_at(sim, clock, run_id) <= YOUNG_REACTION_S
