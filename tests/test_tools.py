"""get_experiment_run and the errors of both tools, through the MCP client in both protocol eras."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .helpers import READ_TOOLS, SIM_URL, TEST_KEY, size_of, text_of

pytestmark = pytest.mark.anyio


async def get(client: Client, run_id: str) -> CallToolResult:
    return await client.call_tool("get_experiment_run", {"run_id": run_id})


@pytest.mark.eras
async def test_the_server_lists_every_read_tool_read_only_and_typed(mcp_client: Client) -> None:
    tools = {t.name: t for t in (await mcp_client.list_tools()).tools}
    assert set(tools) == READ_TOOLS
    for tool in tools.values():
        assert tool.output_schema is not None
        assert tool.annotations is not None and tool.annotations.read_only_hint and tool.annotations.idempotent_hint


async def test_a_completed_run_is_summarised_within_900_bytes(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await get(mcp_client, sim.run_ids["latest"])
    assert not result.is_error
    data: dict[str, Any] = result.structured_content or {}
    assert data["status"] == "completed" and data["finished"] is True and data["score"] == 0.8734
    assert (data["completed_documents"], data["total_documents"], data["error_count"]) == (12, 12, 3)
    assert data["error"] is None and data["cancel_reason"] is None
    assert data["parent_run_id"] == sim.run_ids["older"] and data["n_consensus"] == 5
    assert data["duration_s"] == 254.0 and data["started_at"].endswith("Z")
    assert text_of(result).startswith(
        f"{sim.run_ids['latest']} · completed · score 0.87 · 12/12 docs · 3 errors · 4m14s"
    )
    assert "{" not in text_of(result)  # a rendering, not a JSON dump
    assert size_of(result) <= 900


async def test_a_failed_run_is_data_with_the_end_of_its_trace_within_3000_bytes(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    result = await get(mcp_client, sim.run_ids["failed"])
    assert not result.is_error
    data: dict[str, Any] = result.structured_content or {}
    assert data["status"] == "error" and data["finished"] is True
    assert data["error"]["code"] == "SCHEMA_VALIDATION_ERROR" and data["error"]["block_name"] == "Extract invoice"
    text = text_of(result)
    assert "SchemaValidationError: invoice.total" in text  # the cause, at the very end of a 50 KB trace
    assert "earlier lines cut" in text
    assert size_of(result) <= 3000


async def test_a_cancelled_run_carries_its_reason(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await get(mcp_client, sim.run_ids["cancelled"])
    data: dict[str, Any] = result.structured_content or {}
    assert not result.is_error and data["status"] == "cancelled" and data["finished"]
    assert data["cancel_reason"] == "Cancelled by user from the dashboard"


async def test_a_running_run_shows_progress_elapsed_time_and_eta(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    clock.advance(22)
    data: dict[str, Any] = (await get(mcp_client, sim.run_ids["young"])).structured_content or {}
    assert (data["status"], data["finished"], data["completed_documents"]) == ("running", False, 6)
    assert data["elapsed_s"] == 22.0 and data["eta_s"] == 20
    assert "wait_for_run" in data["hint"]


async def test_an_unknown_status_is_shown_as_it_is(mcp_client: Client, sim: SimulatedRetab) -> None:
    body = {"id": "exprun_new", "lifecycle": {"status": "awaiting_review"}, "total_document_count": 3}
    sim.inject("malformed", body=json.dumps(body).encode())
    result = await get(mcp_client, "exprun_new")
    data: dict[str, Any] = result.structured_content or {}
    assert not result.is_error and data["status"] == "awaiting_review" and data["finished"] is False
    assert "status unknown to this server" in text_of(result)


async def test_an_unknown_run_is_an_error_naming_the_id(mcp_client: Client) -> None:
    result = await get(mcp_client, "exprun_nope")
    assert result.is_error
    assert "'exprun_nope'" in text_of(result) and "Check the id" in text_of(result)


@pytest.mark.parametrize("bad_id", ["", "exprun 2", "../../admin", "x" * 200])
async def test_an_invalid_id_states_the_allowed_form_and_sends_nothing(
    mcp_client: Client, sim: SimulatedRetab, bad_id: str
) -> None:
    for tool in ("get_experiment_run", "wait_for_run"):
        result = await mcp_client.call_tool(tool, {"run_id": bad_id})
        assert result.is_error and "letter, a digit, '_' or '-'" in text_of(result)
    assert sim.requests == []


async def test_a_rejected_key_names_the_variable_but_never_shows_the_key(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    sim.accepted_keys = {"sk_test_someone_else"}
    result = await get(mcp_client, sim.run_ids["latest"])
    assert result.is_error and "RETAB_API_KEY" in text_of(result) and "401" in text_of(result)
    assert TEST_KEY not in text_of(result)


async def test_a_forbidden_key_is_explained(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.forbidden_keys = {TEST_KEY}
    result = await get(mcp_client, sim.run_ids["latest"])
    assert result.is_error and "403" in text_of(result)


async def test_rate_limiting_says_when_to_retry(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.inject(status=429, retry_after="90", times=1)
    result = await get(mcp_client, sim.run_ids["latest"])
    assert result.is_error and "Retry in 90 s" in text_of(result)


async def test_server_errors_are_retried_before_giving_up(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.inject(status=502, times=2)
    result = await get(mcp_client, sim.run_ids["latest"])
    assert not result.is_error and len(sim.requests) == 3


async def test_persistent_server_errors_say_to_retry_later(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.inject(status=500, times=100)
    result = await get(mcp_client, sim.run_ids["latest"])
    assert result.is_error and "HTTP 500" in text_of(result) and "request id req_sim_" in text_of(result)


async def test_an_unreachable_api_says_where_it_tried(mode: str) -> None:
    settings = Settings(api_key=TEST_KEY, base_url="http://127.0.0.1:9", max_retries=0)
    async with Client(build_server(settings), mode=mode) as client:  # type: ignore[arg-type]
        result = await get(client, "exprun_1")
    assert result.is_error and "http://127.0.0.1:9" in text_of(result)


async def test_with_no_key_the_server_lists_tools_and_each_call_says_how_to_set_it(
    sim: SimulatedRetab, mode: str
) -> None:
    server = build_server(Settings(base_url=SIM_URL), transport=httpx2.ASGITransport(app=sim), clock=VirtualClock())
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        assert len((await client.list_tools()).tools) == len(READ_TOOLS)
        for tool in ("get_experiment_run", "wait_for_run"):
            result = await client.call_tool(tool, {"run_id": "exprun_1"})
            assert result.is_error and "RETAB_API_KEY" in text_of(result) and "`env` block" in text_of(result)
    assert sim.requests == []


async def test_an_unreadable_answer_is_an_error_not_a_traceback(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.inject("malformed", times=10)
    result = await get(mcp_client, sim.run_ids["latest"])
    assert result.is_error and "could not read" in text_of(result) and "Traceback" not in text_of(result)


@pytest.mark.parametrize(
    ("tool", "arguments", "names"),
    [
        ("get_experiment_run", {}, ["run_id: required"]),
        ("get_experiment_run", {"run_id": 5}, ["run_id: input should be a valid string"]),
        ("wait_for_run", {"run_id": "exprun_1", "timeout_s": "soon"}, ["timeout_s:"]),
        (
            "wait_for_runs",
            {"run_ids": ["a"] * 21, "mode": "some"},
            ["run_ids:", "mode: input should be 'all' or 'any'"],
        ),
        ("list_experiment_runs", {"limit": 99}, ["limit: input should be less than or equal to 25"]),
    ],
)
@pytest.mark.slow
async def test_argument_errors_name_the_argument_and_what_it_takes(
    mcp_client: Client, tool: str, arguments: dict[str, Any], names: list[str]
) -> None:
    result = await mcp_client.call_tool(tool, arguments)
    text = text_of(result)
    assert result.is_error and f"Invalid arguments for {tool}: " in text and "Call again" in text
    assert all(name in text for name in names), text
    assert "pydantic" not in text and "validation error" not in text and "input_value" not in text
