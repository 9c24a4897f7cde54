"""wait_for_run through the MCP client: finishing, timing out, progress, errors, deadlines, cancellation."""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from retab_mcp.base.clock import RealClock
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.common import AppState
from retab_mcp.tools.server import build_server
from retab_mcp.views.run import RUN_KEYS, WAIT_KEYS
from retab_mcp.watch.schedule import FixedSchedule, Schedule

from .helpers import SIM_URL, TEST_KEY, size_of, text_of

pytestmark = pytest.mark.anyio


async def wait(client: Client, run_id: str, timeout_s: float = 45, **kwargs: Any) -> CallToolResult:
    with anyio.fail_after(10):
        return await client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": timeout_s}, **kwargs)


async def test_waiting_returns_the_full_summary_when_the_run_finishes(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    start = clock.now()
    result = await wait(mcp_client, sim.run_ids["young"])
    data: dict[str, Any] = result.structured_content or {}
    assert not result.is_error
    assert (data["status"], data["finished"], data["timed_out"]) == ("completed", True, False)
    assert data["score"] == 0.8912 and data["parent_run_id"] and "experiment_id" not in data  # ids: from get
    assert data["waited_s"] == pytest.approx(clock.now() - start, abs=0.1)
    assert clock.now() - start <= 42 + 2  # the run ends at +42 s; seen within 2 s


async def test_a_finished_run_returns_at_once(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await wait(mcp_client, sim.run_ids["failed"])
    data: dict[str, Any] = result.structured_content or {}
    assert data["status"] == "error" and data["timed_out"] is False and data["waited_s"] == 0
    assert len(sim.requests) == 1 and "SchemaValidationError" in text_of(result)


async def test_timeout_is_a_normal_result_with_every_published_key(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    start = clock.now()
    result = await wait(mcp_client, sim.run_ids["long"], timeout_s=20)
    data: dict[str, Any] = result.structured_content or {}
    assert not result.is_error
    assert (data["finished"], data["timed_out"], data["status"]) == (False, True, "running")
    assert 19 <= clock.now() - start <= 20 and "waited 20s. Call again." in text_of(result)
    assert set(data) >= RUN_KEYS | WAIT_KEYS and data["eta_s"] > 0
    assert (data["run_id"], data["score"], data["error"], data["cancel_reason"]) == (
        sim.run_ids["long"],
        None,
        None,
        None,
    )
    assert "experiment_id" not in data and len(text_of(result).splitlines()) == 1  # the text stays one line
    assert size_of(result) <= 700


async def test_a_second_wait_reports_the_time_waited_over_all_calls(mcp_client: Client, sim: SimulatedRetab) -> None:
    await wait(mcp_client, sim.run_ids["long"], timeout_s=10)
    second = await wait(mcp_client, sim.run_ids["long"], timeout_s=10)
    assert "waited 20s. Call again." in text_of(second)  # over both calls


@pytest.mark.parametrize(("asked", "expected"), [(0, 1.0), (-5, 1.0), (600, 50.0), (7, 7.0)])
@pytest.mark.slow
async def test_timeout_is_clamped_to_one_and_the_configured_maximum(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock, asked: float, expected: float
) -> None:
    start = clock.now()
    data: dict[str, Any] = (await wait(mcp_client, sim.run_ids["long"], timeout_s=asked)).structured_content or {}
    assert data["timed_out"] is True
    assert expected - 1.5 <= clock.now() - start <= expected


async def test_the_maximum_wait_comes_from_the_environment(sim: SimulatedRetab, clock: VirtualClock) -> None:
    settings = Settings.load({"RETAB_API_KEY": TEST_KEY, "RETAB_MCP_MAX_WAIT_S": "12"}, base_url=SIM_URL)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    start = clock.now()
    async with Client(server) as client:
        await wait(client, sim.run_ids["long"], timeout_s=45)
    assert 10 <= clock.now() - start <= 12


@pytest.mark.eras
async def test_progress_is_sent_only_with_a_token_and_strictly_increases(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    await wait(mcp_client, sim.run_ids["young"], progress_callback=on_progress)
    progress = [p for p, _, _ in events]
    assert progress == sorted(set(progress)) and progress[-1] == 12
    assert all(total == 12 for _, total, _ in events)
    assert all(re.fullmatch(r"(pending|queued|running|completed) · \d+/12 docs", str(m)) for _, _, m in events)
    assert events[-1][2] == "completed · 12/12 docs"


async def test_no_progress_is_sent_without_a_token(server: MCPServer[AppState], sim: SimulatedRetab) -> None:
    messages: list[Any] = []

    async def on_message(message: Any) -> None:
        messages.append(message)

    async with Client(server, mode="legacy", message_handler=on_message) as client:
        await wait(client, sim.run_ids["young"])
    assert not [m for m in messages if "progress" in type(m).__name__.lower() or "progress" in repr(m)[:80]]


async def test_transient_errors_are_retried_until_the_run_finishes(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.inject(status=503, times=3)
    sim.inject(status=429, times=2)
    sim.inject("malformed", times=1)
    result = await wait(mcp_client, sim.run_ids["young"])
    data: dict[str, Any] = result.structured_content or {}
    assert not result.is_error and data["status"] == "completed" and "warning" not in data


async def test_errors_up_to_the_deadline_return_the_last_good_state_with_a_warning(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    clock.advance(5)
    fail_from_now_on(sim, "status")
    result = await wait(mcp_client, sim.run_ids["young"], timeout_s=10)
    data: dict[str, Any] = result.structured_content or {}
    assert not result.is_error and data["timed_out"] is True
    assert "last poll failed" in data["warning"] and "HTTP 500" in data["warning"]


async def test_an_api_failing_from_the_first_poll_to_the_deadline_is_an_error(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    sim.inject(status=503, times=1000)
    result = await wait(mcp_client, sim.run_ids["young"], timeout_s=5)
    assert result.is_error and "HTTP 503" in text_of(result)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_end_the_wait_at_once(mcp_client: Client, sim: SimulatedRetab, status: int) -> None:
    sim.inject(status=status, times=1000)
    result = await wait(mcp_client, sim.run_ids["young"])
    assert result.is_error and str(status) in text_of(result)
    assert len(sim.requests) == 1


async def test_an_unknown_run_ends_the_wait_after_three_not_found_in_a_row(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    result = await wait(mcp_client, "exprun_nope")
    assert result.is_error and "'exprun_nope'" in text_of(result)
    assert len(sim.requests) == 3


async def test_a_run_not_yet_readable_is_waited_for(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.inject(status=404, times=2, path_contains="/runs/")
    result = await wait(mcp_client, sim.run_ids["young"])
    assert not result.is_error and (result.structured_content or {})["status"] == "completed"


async def test_a_young_run_is_seen_within_two_seconds_for_about_the_requests_of_two_second_polling(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    start = clock.now()
    await wait(mcp_client, sim.run_ids["young"])
    finished_at = start + 42  # 2 s queued + 40 s running
    assert clock.now() - finished_at <= 2
    assert len(sim.requests) <= 1.1 * (42 / 2 + 1)


async def test_a_run_of_minutes_costs_far_fewer_requests_than_two_second_polling(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.add_run(duration_s=300, documents=100)
    start = clock.now()
    while not (await wait(mcp_client, run_id)).structured_content["finished"]:  # type: ignore[index]
        pass
    ended = clock.now()
    assert ended - (start + 302) <= 0.1 * 302  # seen within 10 % of its age
    assert len(sim.requests) <= 0.5 * (302 / 2 + 1)


def fail_from_now_on(sim: SimulatedRetab, kind: Any) -> None:
    """Let the next request through, then answer every later one with `kind` (a 500, or a 30 s hang)."""

    def after_first(_request: Any) -> None:
        if len(sim.requests) == 2:  # faults are applied after the hook, so this one fails already
            sim.request_hook = None
            sim.inject(kind, status=500, delay_s=30, times=1000)

    sim.request_hook = after_first


# Real time from here: a hanging API and a client cancel are about the wall clock.


def real_time_server(sim: SimulatedRetab, schedule: Schedule | None = None) -> MCPServer[AppState]:
    return build_server(
        Settings(api_key=TEST_KEY, base_url=SIM_URL),
        transport=httpx2.ASGITransport(app=sim),
        clock=sim.clock,
        schedule=schedule,
    )


@pytest.mark.slow
async def test_a_hanging_api_does_not_stretch_the_wait_past_its_deadline(mode: str) -> None:
    sim = SimulatedRetab(clock=RealClock())
    sim.inject("slow", delay_s=30, times=1)
    async with Client(real_time_server(sim), mode=mode) as client:  # type: ignore[arg-type]
        with anyio.fail_after(2.5):  # the deadline, 1 s, and a margin for a loaded machine
            result = await client.call_tool("wait_for_run", {"run_id": sim.run_ids["young"], "timeout_s": 1})
    assert result.is_error and "did not answer" in text_of(result)


@pytest.mark.slow
async def test_a_hang_after_a_good_poll_returns_that_state(mode: str) -> None:
    sim = SimulatedRetab(clock=RealClock())
    fail_from_now_on(sim, "slow")
    every_half_second = FixedSchedule(every_s=0.5)  # the second poll, sent at 0.5 s, hangs past the deadline
    async with Client(real_time_server(sim, every_half_second), mode=mode) as client:  # type: ignore[arg-type]
        with anyio.fail_after(6):
            result = await client.call_tool("wait_for_run", {"run_id": sim.run_ids["long"], "timeout_s": 3})
    data: dict[str, Any] = result.structured_content or {}
    assert not result.is_error and data["timed_out"] is True and data["status"] == "running"
    assert "did not answer" in data["warning"]


async def test_a_client_cancel_stops_polling_at_once(mode: str) -> None:
    sim = SimulatedRetab(clock=RealClock())
    first_request = anyio.Event()
    sim.request_hook = lambda _request: first_request.set()
    sim.inject("slow", delay_s=30, times=1000)
    async with Client(real_time_server(sim), mode=mode) as client:  # type: ignore[arg-type]
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await client.call_tool("wait_for_run", {"run_id": sim.run_ids["long"], "timeout_s": 45})

                tg.start_soon(call)
                await first_request.wait()
                tg.cancel_scope.cancel()
            await sim.request_cancelled.wait()  # the request in flight was dropped, not left to run out
    assert len(sim.requests) == 1


async def test_a_run_never_found_before_a_short_deadline_is_an_error(mcp_client: Client) -> None:
    result = await wait(mcp_client, "exprun_nope", timeout_s=1)
    assert result.is_error and "'exprun_nope'" in text_of(result)


def requests_for(sim: SimulatedRetab, run_id: str) -> int:
    return sum(1 for r in sim.requests if r.path.endswith(f"/runs/{run_id}"))


@pytest.mark.slow
async def test_concurrent_waits_on_one_run_share_one_poll_loop(mcp_client: Client, sim: SimulatedRetab) -> None:
    shared, alone = sim.add_run(duration_s=30, documents=10), sim.add_run(duration_s=30, documents=10)
    results: list[CallToolResult] = []

    async def wait_on(run_id: str) -> None:
        results.append(await wait(mcp_client, run_id))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(wait_on, shared)
            group.start_soon(wait_on, alone)
    assert all((r.structured_content or {})["status"] == "completed" for r in results)
    assert requests_for(sim, shared) == requests_for(sim, alone)


async def test_a_new_call_resumes_the_runs_schedule_instead_of_starting_over(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    in_calls, in_one = sim.add_run(duration_s=40, documents=12), sim.add_run(duration_s=40, documents=12)
    results: list[CallToolResult] = []

    async def agent_calling_for_10_s_at_a_time() -> None:
        while not (results and (results[-1].structured_content or {})["finished"]):
            results.append(await wait(mcp_client, in_calls, timeout_s=10))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(agent_calling_for_10_s_at_a_time)
            group.start_soon(wait, mcp_client, in_one, 50)
    assert len(results) == 5 and (results[-1].structured_content or {})["status"] == "completed"
    assert requests_for(sim, in_calls) == requests_for(sim, in_one)


@pytest.mark.parametrize("status", [408, 429, 500, 503])
@pytest.mark.slow
async def test_every_tool_treats_a_transient_status_alike(mcp_client: Client, sim: SimulatedRetab, status: int) -> None:
    sim.inject("status", status=status, times=2)
    got = await mcp_client.call_tool("get_experiment_run", {"run_id": sim.run_ids["latest"]})
    sim.inject("status", status=status, times=2)
    waited = await wait(mcp_client, sim.run_ids["latest"])
    sim.inject("status", status=status, times=2)
    batch = await mcp_client.call_tool("wait_for_runs", {"run_ids": [sim.run_ids["latest"]]})
    assert not got.is_error and not waited.is_error and not batch.is_error
    assert (waited.structured_content or {})["status"] == "completed"
    assert (batch.structured_content or {})["runs"][0]["status"] == "completed"


@pytest.mark.parametrize("status", [400, 422])
async def test_every_tool_treats_a_fatal_status_alike(mcp_client: Client, sim: SimulatedRetab, status: int) -> None:
    results = []
    for tool, arguments in (("get_experiment_run", {}), ("wait_for_run", {}), ("wait_for_runs", {})):
        sim.inject("status", status=status, times=1)
        arguments = {"run_ids": [sim.run_ids["long"]]} if tool == "wait_for_runs" else {"run_id": sim.run_ids["long"]}
        results.append(await mcp_client.call_tool(tool, arguments))
    got, waited, batch = results
    assert got.is_error and waited.is_error and f"HTTP {status}" in text_of(waited)
    row = (batch.structured_content or {})["runs"][0]
    assert not batch.is_error and row["status"] == "refused" and f"HTTP {status}" in row["read_error"]
    assert (batch.structured_content or {})["done"] is True  # waiting again would not change it


async def test_an_outage_is_one_warning_for_the_operator_and_its_end_one_info(
    sim: SimulatedRetab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="retab_mcp")
    server = build_server(
        Settings(api_key=TEST_KEY, base_url=SIM_URL),
        transport=httpx2.ASGITransport(app=sim),
        clock=sim.clock,
        schedule=FixedSchedule(every_s=1.0, error_delay_s=1.0),
    )
    async with Client(server) as client:
        await wait(client, sim.run_ids["long"], timeout_s=2)  # a good poll first
        sim.inject("status", status=503, times=6)
        during = await wait(client, sim.run_ids["long"], timeout_s=5)
        after = await wait(client, sim.run_ids["long"], timeout_s=5)
    records = [r for r in caplog.records if r.name.startswith("retab_mcp.watch.watcher")]
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in records] == [
        ("WARNING", "The Retab API is failing"),
        ("INFO", "The Retab API answers again."),
    ]
    assert "InternalServerError, request id req_sim_" in records[0].getMessage()
    warning = (during.structured_content or {})["warning"]
    assert warning.startswith("the last poll failed (") and ".;" not in warning
    assert (after.structured_content or {}).get("warning") is None
