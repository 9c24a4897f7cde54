"""Waits as MCP tasks: a 10-minute run waited on as one task against today's bounded calls (what the model
reads, its turns, the API requests, how soon the end is known), and 200 tasks at once on one server process."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from typing import Any

import anyio
import httpx2
import psutil
from mcp import Client
from tests.task_wire import legacy_session

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .coalescing import _peak_rss_kb  # pyright: ignore[reportPrivateUsage]
from .support import (
    KEY,
    SETTINGS,
    Section,
    answer_to,
    ready_port,
    simulated_api,
    simulator_stats,
    table,
    text_of,
    tokens,
)

IMMEDIATE = "io.modelcontextprotocol/model-immediate-response"
RSS_GOAL_MIB = 250
TASKS_AT_ONCE = 200


async def measure() -> Section:
    section = Section(
        "Waits as tasks",
        "A 10-minute run (100 documents) waited on by an agent, in process on a virtual clock (the simulated API "
        "and the server share it, so the run takes no real time and every figure is exact): today, with "
        "`wait_for_run(timeout_s=45)` called again until the run ends; as a 2025-11-25 task, with one "
        "`tools/call` carrying `task` and one `tasks/result`. The model reads the calls' text (and, for the task, "
        "the `model-immediate-response` a host may show it at once); the reaction is how long after the run "
        "ended the agent had the final result. Then 200 tasks at once, each on its own run (20 to 40 s long), "
        "from 200 streamable HTTP sessions against one server process: its peak resident memory.",
    )
    today, task = await _bounded_calls(), await _as_task()
    rows = [
        ("model turns (calls + results)", today["turns"], task["turns"]),
        ("model-facing text, bytes", today["bytes"], task["bytes"]),
        ("model-facing text, tokens", today["tokens"], task["tokens"]),
        ("API requests for the run", today["requests"], task["requests"]),
        ("reaction: result after the run ended", f"{today['reaction']:.1f} s", f"{task['reaction']:.1f} s"),
    ]
    section.add(*table(["a 10-minute run", "bounded calls (today)", "one task"], rows, "lrr"), "")
    section.goal("a task: 1 call + 1 result", f"{task['turns']} turns", task["turns"] == 2)
    section.goal(
        "a task's model-facing text <= today's",
        f"{task['bytes']} B vs {today['bytes']} B",
        task["bytes"] <= today["bytes"],
    )
    section.goal(
        "a task's API requests = today's (one poll loop)",
        f"{task['requests']} vs {today['requests']}",
        task["requests"] <= today["requests"],
    )
    section.goal(
        "a task's reaction <= today's",
        f"{task['reaction']:.1f} s vs {today['reaction']:.1f} s",
        task["reaction"] <= today["reaction"],
    )
    peak, idle, completed, seconds = await _many_tasks()
    section.add(
        *table(
            ["200 tasks at once", "value"],
            [
                ("tasks that completed", f"{completed} of {TASKS_AT_ONCE}"),
                ("wall time", f"{seconds:.0f} s"),
                ("peak RSS", f"{peak / 1024:.0f} MiB (idle after start-up: {idle / 2**20:.0f} MiB)"),
            ],
            "lr",
        )
    )
    section.goal(
        f"{TASKS_AT_ONCE} tasks at once: peak RSS <= {RSS_GOAL_MIB} MiB, all complete",
        f"{peak / 1024:.0f} MiB, {completed} of {TASKS_AT_ONCE}",
        peak / 1024 <= RSS_GOAL_MIB and completed == TASKS_AT_ONCE,
    )
    return section


def _world() -> tuple[VirtualClock, SimulatedRetab, Any, str, float]:
    clock = VirtualClock(1_000.0)
    sim = SimulatedRetab(clock=clock)
    server = build_server(SETTINGS, transport=httpx2.ASGITransport(app=sim), clock=clock)
    run_id = sim.add_run(duration_s=600, documents=100)
    ends_at = clock.now() + 2.0 + 600  # queue_s + duration_s: the moment the run reads as completed
    return clock, sim, server, run_id, ends_at


async def _bounded_calls() -> dict[str, Any]:
    clock, sim, server, run_id, ends_at = _world()
    turns = text_bytes = text_tokens = 0
    async with Client(server) as client:
        while True:
            result = await client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 45})
            text = text_of(result)
            turns += 2
            text_bytes += len(text.encode())
            text_tokens += tokens(text)
            if (result.structured_content or {}).get("finished"):
                break
    requests = sim.stats()["per_run"].get(run_id, 0)
    return {
        "turns": turns,
        "bytes": text_bytes,
        "tokens": text_tokens,
        "requests": requests,
        "reaction": clock.now() - ends_at,
    }


async def _as_task() -> dict[str, Any]:
    clock, sim, server, run_id, ends_at = _world()
    async with legacy_session(server) as (wire, _):
        created = await wire.result(
            "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id, "timeout_s": 45}, "task": {}}
        )
        final = await wire.result("tasks/result", {"taskId": created["task"]["taskId"]})
        reaction = clock.now() - ends_at
    immediate = str(created.get("_meta", {}).get(IMMEDIATE, ""))
    text = immediate + "".join(block.get("text", "") for block in final["content"])
    requests = sim.stats()["per_run"].get(run_id, 0)
    return {"turns": 2, "bytes": len(text.encode()), "tokens": tokens(text), "requests": requests, "reaction": reaction}


async def _many_tasks() -> tuple[int, int, int, float]:
    """200 sessions over streamable HTTP, each with a task on its own run, against one server process."""
    async with simulated_api("--add-runs", str(TASKS_AT_ONCE), "--run-seconds", "20:40", "--documents", "10") as api:
        run_ids = (await simulator_stats(api))["added_runs"]
        env = {**os.environ, "RETAB_API_KEY": KEY, "RETAB_API_BASE_URL": api}
        command = [sys.executable, "-m", "retab_mcp", "--transport", "http", "--port", "0"]
        process = await anyio.open_process(command, env=env, stdin=subprocess.DEVNULL)
        with anyio.fail_after(30):
            port = await ready_port(process.stderr, rb"serving on http://[^\s/]+:(\d+)/")
        url = f"http://127.0.0.1:{port}/mcp"
        idle = psutil.Process(process.pid).memory_info().rss
        completed: list[bool] = []
        started = time.perf_counter()
        try:
            limits = httpx2.Limits(max_connections=TASKS_AT_ONCE * 2)
            async with httpx2.AsyncClient(timeout=120, limits=limits) as http, anyio.create_task_group() as group:
                for run_id in run_ids:
                    group.start_soon(_one_task, http, url, run_id, completed)
            seconds = time.perf_counter() - started
            peak = _peak_rss_kb(process.pid)
        finally:
            process.terminate()
            await process.wait()
    return peak, idle, sum(completed), seconds


_ids = itertools.count(1)


async def _one_task(http: httpx2.AsyncClient, url: str, run_id: str, completed: list[bool]) -> None:
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
        answer = await http.post(url, json=request, headers=headers)
        if "mcp-session-id" in answer.headers:
            headers["Mcp-Session-Id"] = answer.headers["mcp-session-id"]
        return answer_to(request, answer.text)

    hello = {
        "protocolVersion": "2025-11-25",
        "capabilities": {"tasks": {}},
        "clientInfo": {"name": "b", "version": "0"},
    }
    await ask("initialize", hello)
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    created = await ask("tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}, "task": {}})
    final = await ask("tasks/result", {"taskId": created["result"]["task"]["taskId"]})
    completed.append(final.get("result", {}).get("structuredContent", {}).get("status") == "completed")
