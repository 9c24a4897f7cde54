"""The Retab client against the simulated API, in-process (and a real socket where timing matters)."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from retab_mcp.api.client import USER_AGENT, RetabClient
from retab_mcp.api.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidIdError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from retab_mcp.api.retry import RetryPolicy
from retab_mcp.base.config import Settings
from retab_mcp.reads.common import every_page
from retab_mcp.simulator import SimulatedRetab

from .helpers import SIM_URL, TEST_KEY

pytestmark = pytest.mark.anyio


async def test_requests_carry_the_bearer_key_and_a_user_agent(client: RetabClient, sim: SimulatedRetab) -> None:
    run = await client.get_run(sim.run_ids["latest"])
    assert run.status == "completed"
    headers = sim.requests[-1].headers
    assert headers["authorization"] == f"Bearer {TEST_KEY}"
    assert headers["user-agent"] == USER_AGENT


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
async def test_each_status_raises_its_own_error_class(
    client: RetabClient, sim: SimulatedRetab, status: int, error_class: type[APIStatusError]
) -> None:
    sim.inject(status=status, times=10)
    with pytest.raises(error_class) as caught:
        await client.get_run(sim.run_ids["latest"])
    assert type(caught.value) is error_class
    assert caught.value.status_code == status
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_sim_")


async def test_not_found_uses_the_useful_message_not_the_generic_one(client: RetabClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_run("exprun_404")
    assert caught.value.message == "Experiment run not found: exprun_404"
    assert "An HTTP exception occurred" not in str(caught.value)


async def test_string_detail_is_read(client: RetabClient, sim: SimulatedRetab) -> None:
    sim.inject("raw", status=401, body=b'{"detail": "Not authenticated"}')
    with pytest.raises(AuthenticationError) as caught:
        await client.get_run("exprun_1")
    assert caught.value.message == "Not authenticated"


async def test_validation_detail_is_read(client: RetabClient, sim: SimulatedRetab) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        await client.list_runs(limit=500)
    assert caught.value.message == "limit: Input should be between 1 and 100"


async def test_a_detail_message_of_its_own_is_kept(client: RetabClient, sim: SimulatedRetab) -> None:
    sim.inject(status=409, body={"detail": {"code": "CONFLICT", "message": "Run already started"}})
    with pytest.raises(ConflictError) as caught:
        await client.get_run(sim.run_ids["latest"])
    assert caught.value.message == "Run already started"


async def test_the_key_never_appears_in_any_error(settings: Settings, sim: SimulatedRetab) -> None:
    sim.accepted_keys = {"sk_test_other"}
    async with RetabClient(settings, transport=httpx2.ASGITransport(app=sim)) as c:
        with pytest.raises(AuthenticationError) as caught:
            await c.get_run(sim.run_ids["latest"])
    for text in (str(caught.value), repr(caught.value), repr(settings), repr(caught.value.__dict__)):
        assert TEST_KEY not in text


async def test_unreachable_api_raises_connection_error_naming_the_url() -> None:
    with anyio.fail_after(10):
        async with RetabClient(Settings(api_key=TEST_KEY, base_url="http://127.0.0.1:9", max_retries=0)) as c:
            with pytest.raises(APIConnectionError) as caught:
                await c.get_run("exprun_1")
    assert "http://127.0.0.1:9" in str(caught.value)
    assert TEST_KEY not in str(caught.value)


async def test_a_silent_server_raises_timeout_within_the_read_timeout() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def hold_open(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    settings = Settings(api_key=TEST_KEY, base_url=f"http://127.0.0.1:{port}", read_timeout_s=0.2, max_retries=0)
    with anyio.fail_after(5):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, hold_open)
            async with RetabClient(settings) as c:
                with pytest.raises(APITimeoutError):
                    await c.get_run("exprun_1")
            tg.cancel_scope.cancel()


async def test_server_errors_are_retried_with_growing_backoff(
    client: RetabClient, sim: SimulatedRetab, sleeps: list[float]
) -> None:
    sim.inject(status=503, times=2)
    run = await client.get_run(sim.run_ids["latest"])
    assert run.status == "completed"
    assert len(sim.requests) == 3
    assert sleeps == [0.5, 1.0]


async def test_retry_after_is_obeyed(client: RetabClient, sim: SimulatedRetab, sleeps: list[float]) -> None:
    sim.inject(status=429, retry_after="7", times=1)
    await client.get_run(sim.run_ids["latest"])
    assert sleeps == [7.0]


async def test_retry_after_beyond_the_cap_gives_up_at_once_and_says_when(
    client: RetabClient, sim: SimulatedRetab, sleeps: list[float]
) -> None:
    sim.inject(status=429, retry_after="120", times=1)
    with pytest.raises(RateLimitError) as caught:
        await client.get_run(sim.run_ids["latest"])
    assert caught.value.retry_after_s == 120
    assert sleeps == [] and len(sim.requests) == 1


async def test_429_without_retry_after_backs_off(client: RetabClient, sim: SimulatedRetab, sleeps: list[float]) -> None:
    sim.inject(status=429, times=1)
    await client.get_run(sim.run_ids["latest"])
    assert sleeps == [0.5]


async def test_retries_stop_after_the_configured_count(
    client: RetabClient, sim: SimulatedRetab, sleeps: list[float]
) -> None:
    sim.inject(status=502, times=100)
    with pytest.raises(InternalServerError):
        await client.get_run(sim.run_ids["latest"])
    assert len(sim.requests) == 4 and len(sleeps) == 3


async def test_retries_stop_when_the_time_budget_is_spent(settings: Settings, sim: SimulatedRetab) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(max_retries=10, budget_s=2.0, sleep=record, jitter=lambda: 1.0)
    sim.inject(status=500, times=100)
    async with RetabClient(settings, transport=httpx2.ASGITransport(app=sim), retry=policy) as c:
        with pytest.raises(InternalServerError):
            await c.get_run(sim.run_ids["latest"])
    assert slept == [0.5, 1.0] and sum(slept) <= 2.0


async def test_jitter_keeps_delays_within_half_and_full_backoff(settings: Settings, sim: SimulatedRetab) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(sleep=record, jitter=lambda: 0.0)
    sim.inject(status=500, times=1)
    async with RetabClient(settings, transport=httpx2.ASGITransport(app=sim), retry=policy) as c:
        await c.get_run(sim.run_ids["latest"])
    assert slept == [0.25]


async def test_not_found_is_not_retried(client: RetabClient, sim: SimulatedRetab, sleeps: list[float]) -> None:
    with pytest.raises(NotFoundError):
        await client.get_run("exprun_missing")
    assert len(sim.requests) == 1 and sleeps == []


async def test_post_is_never_retried(client: RetabClient, sim: SimulatedRetab, sleeps: list[float]) -> None:
    sim.inject(status=503, times=1)
    with pytest.raises(InternalServerError):
        await client.cancel_run(sim.run_ids["long"])
    assert [r.method for r in sim.requests] == ["POST"] and sleeps == []


async def test_cancel_returns_the_new_lifecycle(client: RetabClient, sim: SimulatedRetab) -> None:
    lifecycle = await client.cancel_run(sim.run_ids["long"])
    assert lifecycle.status == "cancelled"


@pytest.mark.parametrize("bad_id", ["", "a/b", "../runs", "x" * 129, "run id", "exprun_é", "a?b=c", "%2e%2e"])
async def test_a_bad_id_raises_and_sends_nothing(client: RetabClient, sim: SimulatedRetab, bad_id: str) -> None:
    with pytest.raises(InvalidIdError) as caught:
        await client.get_run(bad_id)
    assert "letter, a digit" in str(caught.value)
    with pytest.raises(InvalidIdError):
        await client.list_results(bad_id)
    with pytest.raises(InvalidIdError):
        await client.list_runs(experiment_id=bad_id)
    assert sim.requests == []


async def test_missing_key_raises_and_sends_nothing(sim: SimulatedRetab) -> None:
    async with RetabClient(Settings(base_url=SIM_URL), transport=httpx2.ASGITransport(app=sim)) as c:
        with pytest.raises(MissingAPIKeyError):
            await c.get_run("exprun_1")
    assert sim.requests == []


async def test_a_body_that_is_not_json_is_a_readable_error(client: RetabClient, sim: SimulatedRetab) -> None:
    sim.inject("malformed")
    with pytest.raises(APIResponseValidationError) as caught:
        await client.get_run(sim.run_ids["latest"])
    assert "not JSON" in str(caught.value)
    assert caught.value.excerpt.startswith("<html>")


async def test_a_body_of_the_wrong_shape_is_a_readable_error(client: RetabClient, sim: SimulatedRetab) -> None:
    sim.inject("malformed", body=b'{"id": 42, "lifecycle": "running"}')
    with pytest.raises(APIResponseValidationError) as caught:
        await client.get_run(sim.run_ids["latest"])
    assert "id" in str(caught.value) and caught.value.request_id


async def test_listing_follows_the_cursor_through_every_page(client: RetabClient, sim: SimulatedRetab) -> None:
    first = await client.list_runs(limit=2)
    assert len(first.data) == 2 and first.next_cursor == first.data[-1].id
    second = await client.list_runs(limit=2, after=first.next_cursor)
    assert {r.id for r in first.data}.isdisjoint(r.id for r in second.data)
    every = [run.id for run in await every_page(client.list_runs, 1_000, limit=2)]
    assert sorted(every) == sorted(r.id for r in sim.world.runs)
    assert len(set(every)) == len(every)


async def test_reading_every_page_stops_at_max_items(client: RetabClient) -> None:
    assert len(await every_page(client.list_runs, 3, limit=2)) == 3


async def test_list_filters_reach_the_api(client: RetabClient, sim: SimulatedRetab) -> None:
    page = await client.list_runs(status="error", limit=100)
    assert [r.id for r in page.data] == [sim.run_ids["failed"]]
    assert sim.requests[-1].query == {"status": "error", "limit": "100"}


async def test_a_stale_cursor_is_a_422(client: RetabClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.list_runs(after="exprun_gone")


async def test_results_are_listed_one_per_document(client: RetabClient, sim: SimulatedRetab) -> None:
    rows = await every_page(client.list_results, 1_000, run_id=sim.run_ids["failed"])
    assert len(rows) == 40
    assert sum(r.lifecycle.status == "error" for r in rows) == 3  # two documents, then the one that stopped the run
    assert rows[0].filename is not None and rows[0].filename.endswith(".pdf")


@pytest.mark.parametrize("view", ["summary", "by_document", "by_target", "votes"])
async def test_metrics_views_are_read(client: RetabClient, sim: SimulatedRetab, view: str) -> None:
    metrics = await client.get_metrics(sim.run_ids["latest"], view)  # type: ignore[arg-type]
    assert metrics.kind == view


async def test_summary_metrics_carry_the_prior_score(client: RetabClient, sim: SimulatedRetab) -> None:
    metrics = await client.get_metrics(sim.run_ids["latest"], include_prior=True)
    assert (metrics.score, metrics.prior_score, metrics.prior_run_id) == (0.8734, 0.91, sim.run_ids["older"])
    assert sim.requests[-1].query["include_prior"] == "true"


async def test_stale_metrics_are_an_answer_not_an_error(client: RetabClient, sim: SimulatedRetab) -> None:
    metrics = await client.get_metrics(sim.run_ids["stale"])
    assert metrics.kind == "stale_metrics" and metrics.message


async def test_an_experiment_is_read(client: RetabClient, sim: SimulatedRetab) -> None:
    run = await client.get_run(sim.run_ids["latest"])
    assert run.experiment_id is not None
    experiment = await client.get_experiment(run.experiment_id)
    assert experiment.name == "invoices-v2"
