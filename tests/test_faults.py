"""API faults over a real loopback socket, driven through the MCP tools.

The simulated Retab API is served by uvicorn on 127.0.0.1; the MCP server reaches it with its real HTTP
client, so timeouts, refused and cut connections are the network's own. Each fault must end in a correct
result or a clear isError within its time bound, and the server must answer the next call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest
from mcp import Client
from mcp.types import CallToolResult

from retab_mcp.base.clock import RealClock
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.tools.server import build_server
from retab_mcp.watch.schedule import FixedSchedule

from .helpers import TEST_KEY, LoopbackAPI, size_of, text_of

pytestmark = pytest.mark.anyio

BOUND_S = 10  # every faulty call ends within this


@pytest.fixture
async def api() -> AsyncIterator[LoopbackAPI]:
    async with anyio.create_task_group() as group:
        loopback = LoopbackAPI(SimulatedRetab(clock=RealClock()), group)
        loopback.start()
        yield loopback
        await loopback.stop()


def fast_settings(url: str, **overrides: Any) -> Settings:
    return Settings(
        api_key=TEST_KEY,
        base_url=url,
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
        max_retries=2,
        retry_budget_s=3,
        **overrides,
    )


@pytest.fixture
async def tools(api: LoopbackAPI) -> AsyncIterator[Client]:
    # A brisk fixed schedule: these tests are about what each fault does, not about when polls happen.
    brisk = FixedSchedule(every_s=0.5, error_delay_s=0.5)
    async with Client(build_server(fast_settings(api.url), schedule=brisk)) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    with anyio.fail_after(BOUND_S):
        return await client.call_tool(tool, arguments)


async def still_serves(client: Client, api: LoopbackAPI) -> None:
    result = await call(client, "get_experiment_run", run_id=api.sim.run_ids["latest"])
    assert not result.is_error and (result.structured_content or {})["status"] == "completed"


def run_json(api: LoopbackAPI, role: str = "latest", **changes: Any) -> dict[str, Any]:
    from retab_mcp.simulator.scenario import run_body

    run = api.sim.world.run(api.sim.run_ids[role])
    assert run is not None
    return {**run_body(api.sim.world, run, api.sim.clock.now()), **changes}


# Each case: how to break the API, then what the tool must answer.
STATUS_FAULTS = [
    pytest.param({"status": 503, "times": 2}, None, id="5xx-burst-retried"),
    pytest.param({"status": 500, "times": 99}, "HTTP 500", id="5xx-persistent"),
    pytest.param({"status": 429, "times": 1, "retry_after": "1"}, None, id="429-retry-after-1s"),
    pytest.param({"status": 429, "times": 1}, None, id="429-no-retry-after"),
    pytest.param({"status": 429, "times": 1, "retry_after": "120"}, "Retry in 120 s", id="429-retry-after-too-long"),
    pytest.param(
        {"kind": "slow", "delay_s": 2.0, "times": 99}, "did not answer in time", id="slower-than-read-timeout"
    ),
    pytest.param({"kind": "slow", "delay_s": 2.0, "times": 1}, None, id="one-slow-answer-retried"),
    pytest.param({"kind": "malformed", "body": b'{"id": "exprun_x", "lifec'}, "could not read", id="malformed-json"),
    pytest.param(
        {
            "kind": "raw",
            "status": 502,
            "body": b"<html><h1>502 Bad Gateway</h1></html>",
            "media_type": "text/html",
            "times": 99,
        },
        "HTTP 502",
        id="html-error-page",
    ),
    pytest.param(
        {"kind": "raw", "status": 200, "body": b"<html>login</html>", "media_type": "text/html"},
        "could not read",
        id="html-200",
    ),
    pytest.param({"kind": "truncated", "times": 99}, "Could not reach", id="truncated-body"),
    pytest.param({"kind": "truncated", "times": 1}, None, id="one-truncated-body-retried"),
]


@pytest.mark.parametrize(("fault", "error"), STATUS_FAULTS)
@pytest.mark.slow
async def test_a_faulty_answer_ends_in_a_result_or_a_clear_error(
    tools: Client, api: LoopbackAPI, fault: dict[str, Any], error: str | None
) -> None:
    api.sim.inject(**{"path_contains": "/runs/", **fault})
    result = await call(tools, "get_experiment_run", run_id=api.sim.run_ids["latest"])
    if error is None:
        assert not result.is_error, text_of(result)
        assert (result.structured_content or {})["status"] == "completed"
    else:
        assert result.is_error and error in text_of(result), text_of(result)
        assert "Traceback" not in text_of(result)
        assert text_of(result) != "Error executing tool get_experiment_run"  # the SDK's form for a crash
    api.sim.faults.clear()
    await still_serves(tools, api)


DRIFTS = [
    pytest.param({"lifecycle": {"status": "paused"}}, "paused", id="unknown-status"),
    pytest.param({"lifecycle": "running"}, "running", id="bare-status-string"),
    pytest.param(
        {"total_document_count": None, "score": None, "error_count": None}, "completed", id="nulls-for-numbers"
    ),
    pytest.param({"brand_new_field": {"x": [1, 2]}, "timing": {"created_at": None}}, "completed", id="extra-fields"),
]


@pytest.mark.parametrize(("changes", "status"), DRIFTS)
@pytest.mark.slow
async def test_schema_drift_still_reads(tools: Client, api: LoopbackAPI, changes: dict[str, Any], status: str) -> None:
    body = run_json(api, **changes)
    api.sim.inject("raw", status=200, body=json.dumps(body).encode(), path_contains="/runs/", times=2)
    result = await call(tools, "get_experiment_run", run_id=api.sim.run_ids["latest"])
    assert not result.is_error, text_of(result)
    assert (result.structured_content or {})["status"] == status
    assert size_of(result) <= 900


async def test_a_run_with_only_its_id_still_reads(tools: Client, api: LoopbackAPI) -> None:
    api.sim.inject("raw", status=200, body=b'{"id": "exprun_bare"}', path_contains="/runs/")
    result = await call(tools, "get_experiment_run", run_id="exprun_bare")
    assert not result.is_error and (result.structured_content or {})["status"] == "unknown"


@pytest.mark.slow
async def test_5xx_bursts_during_a_wait_do_not_end_it(tools: Client, api: LoopbackAPI) -> None:
    run_id = api.sim.add_run(duration_s=3, queue_s=0.5, documents=3)
    api.sim.inject(status=503, times=3, path_contains=run_id)
    result = await call(tools, "wait_for_run", run_id=run_id, timeout_s=BOUND_S - 2)
    assert not result.is_error and (result.structured_content or {})["status"] == "completed"


@pytest.mark.slow
async def test_an_api_refusing_connections_mid_wait_is_waited_out(tools: Client, api: LoopbackAPI) -> None:
    """The API goes down after the wait's first poll; its port resets every connection until the server has
    tried twice, then the API is back on the same port and the wait sees the run to its end."""
    run_id = api.sim.add_run(duration_s=3, queue_s=0.5, documents=3)
    first_poll = anyio.Event()
    api.sim.request_hook = lambda request: first_poll.set()
    refused: list[int] = []
    tried_twice = anyio.Event()

    async def reset(stream: anyio.abc.SocketStream) -> None:
        refused.append(1)
        await stream.aclose()
        if len(refused) >= 2:
            tried_twice.set()

    results: list[CallToolResult] = []

    async def wait() -> None:
        results.append(await call(tools, "wait_for_run", run_id=run_id, timeout_s=BOUND_S - 1))

    with anyio.fail_after(BOUND_S):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await first_poll.wait()
            await api.stop()
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=api.port)
            async with anyio.create_task_group() as outage:
                outage.start_soon(listener.serve, reset)
                await tried_twice.wait()
                outage.cancel_scope.cancel()
            await listener.aclose()
            api.start()
    assert not results[0].is_error and (results[0].structured_content or {})["status"] == "completed"
    assert len(refused) >= 2
    await still_serves(tools, api)


@pytest.mark.slow
async def test_an_api_down_for_a_whole_wait_ends_within_the_timeout_with_the_last_state(
    tools: Client, api: LoopbackAPI
) -> None:
    run_id = api.sim.run_ids["long"]
    seen = await call(tools, "get_experiment_run", run_id=run_id)
    assert not seen.is_error
    await api.stop()
    with anyio.fail_after(5):
        result = await call(tools, "wait_for_run", run_id=run_id, timeout_s=2)
    data = result.structured_content or {}
    assert not result.is_error and data["timed_out"] is True and data["status"] == "running"  # as last read
    assert "Could not reach the Retab API" in data["warning"]
    api.start()
    await still_serves(tools, api)


@pytest.mark.slow
async def test_triage_and_lists_survive_faults_on_their_side_requests(tools: Client, api: LoopbackAPI) -> None:
    api.sim.inject("truncated", times=99, path_contains="/results")
    api.sim.inject("raw", status=200, body=b"[]", path_contains="/metrics", times=99)
    result = await call(tools, "triage_experiment_run", run_id=api.sim.run_ids["latest"])
    data = result.structured_content or {}
    assert not result.is_error and data["run"]["status"] == "completed"
    assert {w.split(" ")[0] for w in data["warnings"]} == {"results", "metrics"}
    listing = await call(tools, "list_experiment_run_results", run_id=api.sim.run_ids["latest"])
    assert listing.is_error and "Could not reach" in text_of(listing)
    api.sim.faults.clear()
    await still_serves(tools, api)
