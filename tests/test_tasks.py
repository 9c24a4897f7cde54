"""Waits as MCP tasks, in process, on the virtual clock: a ten-minute run is waited on in milliseconds.

Both wires are driven message by message (tests/task_wire.py), as a host that speaks tasks would: the
2025-11-25 one (`task` in `tools/call`, then tasks/get, tasks/result, tasks/list, tasks/cancel) and the
2026-07-28 extension (`resultType: "task"`, then tasks/get with the result inline, tasks/cancel). Hosts
that do not ask get the bounded call they always had. Real clients over stdio and HTTP: test_tasks_interop.py.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.mcpserver import MCPServer

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.common import AppState
from retab_mcp.tools.server import RetabServer, build_server

from .helpers import FINISHED, SIM_URL, TEST_KEY
from .task_wire import TASKS_EXTENSION, Message, Wire, legacy_session, modern_peer

pytestmark = pytest.mark.anyio

TEN_MINUTES = 600.0


def wait_call(run_id: str, **extra: Any) -> dict[str, Any]:
    return {"name": "wait_for_run", "arguments": {"run_id": run_id, "timeout_s": 45}, **extra}


def waiters(server: MCPServer[AppState]) -> int:
    """Callers waiting on some run in the server, by its watcher."""
    assert isinstance(server, RetabServer) and server.state is not None
    return server.state.watcher.waiting


def live_records(server: MCPServer[AppState]) -> list[Any]:
    """The task records the server holds in memory (its registry's), to watch them be freed."""
    assert isinstance(server, RetabServer) and server.state is not None and server.task_service is not None
    registry = server.task_service.registry_of(server.state)
    assert registry is not None
    return registry.records()


def polls_of(sim: SimulatedRetab, run_id: str) -> int:
    return sim.stats()["per_run"].get(run_id, 0)


async def test_a_2025_host_that_declares_tasks_is_offered_them_and_sees_the_waits_marked(
    server: MCPServer[AppState],
) -> None:
    async with legacy_session(server) as (wire, initialized):
        tools = (await wire.result("tools/list"))["tools"]
    assert initialized["capabilities"]["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    assert (
        "extensions" not in initialized["capabilities"]
        or TASKS_EXTENSION not in initialized["capabilities"]["extensions"]
    )
    marked = {tool["name"]: tool.get("execution") for tool in tools if tool.get("execution")}
    assert marked == {"wait_for_run": {"taskSupport": "optional"}, "wait_for_runs": {"taskSupport": "optional"}}


async def test_a_2025_host_that_does_not_declare_tasks_gets_the_handshake_listing_and_call_it_always_had(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with legacy_session(server, tasks=False) as (wire, initialized):
        tools = (await wire.result("tools/list"))["tools"]
        answer = await wire.result("tools/call", wait_call(run_id, task={"ttl": 60_000}))
    assert "tasks" not in initialized["capabilities"]
    assert all("execution" not in tool for tool in tools)
    assert answer["structuredContent"]["timed_out"] is True  # the bounded call: the `task` field is ignored
    assert "task" not in answer


async def test_a_2025_call_whose_task_is_null_is_the_bounded_call(
    sim: SimulatedRetab, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with legacy_session(server) as (wire, _):
        answer = await wire.result("tools/call", wait_call(run_id, task=None))
    assert answer["structuredContent"]["timed_out"] is True and "task" not in answer


async def test_a_long_session_keeps_nothing_of_its_tasks_once_they_have_expired(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    """A stdio session lives as long as the process: each task it made must be freed at its TTL, not held
    until the session closes (by the callback that cancels the session's tasks when it does)."""
    async with legacy_session(server) as (wire, _):
        for _ in range(30):
            created = await wire.result("tools/call", wait_call(FINISHED, task={"ttl": 10_000}))
            record = await wire.result("tasks/get", {"taskId": created["task"]["taskId"]})
            assert record["status"] in ("working", "completed")
        with anyio.fail_after(30):
            for task_id in [t["taskId"] for t in (await wire.result("tasks/list"))["tasks"]]:
                await wire.result("tasks/result", {"taskId": task_id})
        held = [weakref.ref(record) for record in live_records(server)]
        await clock.sleep(20)
        assert (await wire.result("tasks/list"))["tasks"] == []  # dropped at their TTL
        gc.collect()
        collected = [ref for ref in held if ref() is None]
    assert len(held) == 30 and len(collected) == 30, f"{len(held) - len(collected)} of {len(held)} still held"


async def test_a_2025_task_waits_out_a_ten_minute_run_and_tasks_result_is_the_final_wait_result(
    sim: SimulatedRetab, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with legacy_session(server) as (wire, _):
        created = await wire.result("tools/call", wait_call(run_id, task={}, _meta={"progressToken": "p1"}))
        task_id = created["task"]["taskId"]
        assert created["task"]["status"] == "working"
        assert len(task_id) >= 32
        working = await wire.result("tasks/get", {"taskId": task_id})
        with anyio.fail_after(30):
            final = await wire.ask("tasks/result", {"taskId": task_id})
        ended = await wire.result("tasks/get", {"taskId": task_id})
        listed = (await wire.result("tasks/list"))["tasks"]
        await wire.until_notified("notifications/tasks/status")
    assert working["status"] == "working" and working["ttl"] == 3_600_000 and working["pollInterval"] == 2000
    result = final["result"]
    assert result["structuredContent"]["finished"] is True
    assert result["structuredContent"]["status"] == "completed"
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
    assert ended["status"] == "completed" and ended["statusMessage"].startswith(run_id)
    assert [task["taskId"] for task in listed] == [task_id]
    progress = [n["params"] for n in wire.notifications if n["method"] == "notifications/progress"]
    assert progress and all(p["progressToken"] == "p1" for p in progress)
    values = [p["progress"] for p in progress]
    assert values == sorted(set(values)), "progress strictly increases over the task's life"
    statuses = [n["params"]["status"] for n in wire.notifications if n["method"] == "notifications/tasks/status"]
    assert statuses == ["completed"]


async def test_a_task_on_a_run_that_outlives_its_ttl_ends_with_the_not_finished_result_then_expires(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with legacy_session(server) as (wire, _):
        created = await wire.result("tools/call", wait_call(run_id, task={"ttl": 120_000}))
        task_id = created["task"]["taskId"]
        with anyio.fail_after(30):
            final = (await wire.ask("tasks/result", {"taskId": task_id}))["result"]
        assert 100 <= clock.now() - 1_000 < 120  # stopped waiting before its TTL, with time to fetch the result
        assert final["structuredContent"]["timed_out"] is True
        await clock.sleep(30)
        gone = await wire.ask("tasks/get", {"taskId": task_id})
    assert gone["error"]["code"] == -32602


async def test_cancelling_a_task_stops_its_wait_and_polling_and_leaves_the_run_going(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with legacy_session(server) as (wire, _):
        created = await wire.result("tools/call", wait_call(run_id, task={}))
        task_id = created["task"]["taskId"]
        await clock.sleep(60)
        cancelled = await wire.result("tasks/cancel", {"taskId": task_id})
        polls = polls_of(sim, run_id)
        await clock.sleep(120)
        polls_after = polls_of(sim, run_id)
        again = await wire.ask("tasks/cancel", {"taskId": task_id})
        waiting = waiters(server)
        run = await wire.result("tools/call", {"name": "get_experiment_run", "arguments": {"run_id": run_id}})
    assert cancelled["status"] == "cancelled"
    assert polls_after == polls, "no poll after the cancel"
    assert waiting == 0
    assert again["error"]["code"] == -32602  # already terminal
    assert run["structuredContent"]["status"] == "running"  # the Retab run itself was not cancelled


async def test_closing_a_2025_session_cancels_its_tasks(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with legacy_session(server) as (wire, _):
        await wire.result("tools/call", wait_call(run_id, task={}))
        await clock.sleep(30)
        assert waiters(server) == 1
        polls = polls_of(sim, run_id)
    await clock.sleep(120)
    assert polls_of(sim, run_id) == polls


async def test_a_2026_request_that_declares_the_extension_gets_a_task_with_its_result_inline(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with modern_peer(server) as wire:
        discovered = await wire.result("server/discover")
        created = await wire.result("tools/call", wait_call(run_id))
        task_id = created["taskId"]
        seen = [await wire.result("tasks/get", {"taskId": task_id})]
        with anyio.fail_after(30):
            while seen[-1]["status"] == "working":
                await clock.sleep(2)  # as a host honours pollIntervalMs
                seen.append(await wire.result("tasks/get", {"taskId": task_id}))
        update = await wire.result("tasks/update", {"taskId": task_id, "inputResponses": {}})
    assert TASKS_EXTENSION in discovered["capabilities"]["extensions"]
    assert created["resultType"] == "task" and created["ttlMs"] == 3_600_000 and created["pollIntervalMs"] == 2000
    messages = {task.get("statusMessage") for task in seen[:-1]}
    assert any("docs" in (message or "") for message in messages), messages
    final = seen[-1]
    assert final["status"] == "completed" and final["resultType"] == "complete"
    assert final["result"]["structuredContent"]["finished"] is True
    assert update == {"resultType": "complete", "_meta": update["_meta"]}


async def test_a_2026_request_without_the_extension_gets_the_bounded_call_and_no_task_methods(
    sim: SimulatedRetab, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with modern_peer(server, tasks=False) as wire:
        answer = await wire.result("tools/call", wait_call(run_id))
        refused = await wire.ask("tasks/get", {"taskId": "anything"})
    assert answer["resultType"] == "complete" and answer["structuredContent"]["timed_out"] is True
    assert refused["error"]["code"] == -32021


async def test_a_finished_run_is_one_round_and_a_2026_cancel_ends_a_working_task(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with modern_peer(server) as wire:
        done = await wire.result("tools/call", wait_call(FINISHED))
        working = await wire.result("tools/call", wait_call(run_id))
        await clock.sleep(5)
        finished = await wire.result("tasks/get", {"taskId": done["taskId"]})
        assert await wire.result("tasks/cancel", {"taskId": working["taskId"]}) == {
            "resultType": "complete",
            "_meta": finished["_meta"],
        }
        cancelled = await wire.result("tasks/get", {"taskId": working["taskId"]})
        late = await wire.ask("tasks/cancel", {"taskId": done["taskId"]})  # ended: acknowledged, left as it is
        still = await wire.result("tasks/get", {"taskId": done["taskId"]})
    assert "result" in late and still["status"] == "completed"
    assert finished["status"] == "completed" and finished["result"]["structuredContent"]["status"] == "completed"
    assert cancelled["status"] == "cancelled" and "result" not in cancelled


async def test_tasks_are_bounded_per_caller_and_past_the_bound_each_era_says_so_its_way(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, max_tasks_per_caller=2)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with legacy_session(server) as (wire, _):
        for _ in range(2):
            await wire.result("tools/call", wait_call(run_id, task={}))
        refused = await wire.ask("tools/call", wait_call(run_id, task={}))
    assert refused["error"]["code"] == -32600 and "RETAB_MCP_MAX_TASKS_PER_CALLER" in refused["error"]["message"]
    async with modern_peer(server) as wire:
        for _ in range(2):
            assert (await wire.result("tools/call", wait_call(run_id)))["resultType"] == "task"
        bounded = await wire.result("tools/call", wait_call(run_id))
    assert bounded["resultType"] == "complete" and bounded["structuredContent"]["timed_out"] is True


async def test_a_task_of_another_era_or_a_made_up_id_is_not_found(
    sim: SimulatedRetab, server: MCPServer[AppState]
) -> None:
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    async with modern_peer(server) as modern:
        task_id = (await modern.result("tools/call", wait_call(run_id)))["taskId"]
        async with legacy_session(server) as (legacy, _):
            other_era = await legacy.ask("tasks/get", {"taskId": task_id})
            made_up = await legacy.ask("tasks/result", {"taskId": task_id[:-4] + "AAAA"})
        await modern.result("tasks/cancel", {"taskId": task_id})
    assert other_era["error"]["code"] == made_up["error"]["code"] == -32602


async def test_twenty_cancels_of_one_task_at_once_cancel_it_once_and_leave_the_run_going(
    sim: SimulatedRetab, clock: VirtualClock, server: MCPServer[AppState]
) -> None:
    """An agent framework retrying, or twenty of them: one cancel takes, the others are told it has ended
    (2025) or acknowledged with the task left as it is (2026); the task says cancelled once, to every caller."""
    run_id = sim.add_run(duration_s=TEN_MINUTES)
    answers: list[Message] = []
    async with legacy_session(server) as (wire, _):
        task_id = (await wire.result("tools/call", wait_call(run_id, task={})))["task"]["taskId"]
        await clock.sleep(10)
        async with anyio.create_task_group() as callers:
            for _ in range(20):
                callers.start_soon(lambda: ask_into(answers, wire, "tasks/cancel", {"taskId": task_id}))
        final = await wire.result("tasks/get", {"taskId": task_id})
    cancelled = [a for a in answers if "result" in a]
    assert len(cancelled) == 1 and cancelled[0]["result"]["status"] == "cancelled"
    assert all(a["error"]["code"] == -32602 for a in answers if "error" in a) and len(answers) == 20
    assert final["status"] == "cancelled"
    modern_answers: list[Message] = []
    async with modern_peer(server) as modern:
        modern_id = (await modern.result("tools/call", wait_call(run_id)))["taskId"]
        async with anyio.create_task_group() as callers:
            for _ in range(20):
                callers.start_soon(lambda: ask_into(modern_answers, modern, "tasks/cancel", {"taskId": modern_id}))
        modern_final = await modern.result("tasks/get", {"taskId": modern_id})
    assert len(modern_answers) == 20 and all("result" in a for a in modern_answers)
    assert modern_final["status"] == "cancelled"
    assert not any(r.method == "POST" for r in sim.requests), "the Retab run itself was not cancelled"


async def ask_into(answers: list[Message], wire: Wire, method: str, params: dict[str, Any]) -> None:
    answers.append(await wire.ask(method, params))
