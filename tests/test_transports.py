"""The real command over real transports: stdio as mcp.json launches it, streamable HTTP and SSE on
loopback ports. Subprocesses, real sockets, the SDK's own clients."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.types import TextContent

from retab_mcp.simulator.eval_world import eval_run_id
from retab_mcp.simulator.scenario import opaque_id
from retab_mcp.simulator.workflow_world import workflow_run_id

from .helpers import READ_TOOLS, WRITE_TOOLS
from .processes import serve

pytestmark = [pytest.mark.anyio, pytest.mark.eras]

ROOT = Path(__file__).parents[1]
FINISHED = opaque_id("exprun", "latest")
YOUNG = opaque_id("exprun", "young")  # in demo mode: ends ~14 s after the server starts
LONG = opaque_id("exprun", "long")


async def exercise(client: Client) -> None:
    """What every transport must carry: both tools, structured output, progress, a bounded wait."""
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == READ_TOOLS
    got = await client.call_tool("get_experiment_run", {"run_id": FINISHED})
    assert not got.is_error and (got.structured_content or {})["status"] == "completed"
    assert isinstance(got.content[0], TextContent) and got.content[0].text.startswith(FINISHED)
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    waited = await client.call_tool("wait_for_run", {"run_id": LONG, "timeout_s": 1}, progress_callback=on_progress)
    data: dict[str, Any] = waited.structured_content or {}
    assert not waited.is_error and data["timed_out"] is True and data["finished"] is False
    assert seen and seen == sorted(set(seen))


@pytest.mark.slow
async def test_stdio_server_launched_exactly_as_mcp_json_says(mode: str) -> None:
    entry = json.loads((ROOT / "mcp.json").read_text())["mcpServers"]["retab-demo"]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **entry.get("env", {})}
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env, cwd=ROOT)
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
            await exercise(client)


@pytest.mark.slow
async def test_every_tool_resource_and_prompt_over_stdio() -> None:
    """Each triage tool, the run resource and the prompt, through a real stdio subprocess with writes allowed."""
    env = {"PATH": os.environ["PATH"], "RETAB_MCP_ALLOW_WRITES": "1"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "retab_mcp", "--demo"], env=env, cwd=ROOT)
    failed = opaque_id("exprun", "failed")
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("list_experiment_runs", {"status": "completed"}, "runs"),
        ("list_experiment_run_results", {"run_id": FINISHED, "status": "error"}, "results"),
        ("get_experiment_run_metrics", {"run_id": FINISHED}, "lowest"),
        ("triage_experiment_run", {"run_id": failed}, "verdict"),
        ("wait_for_runs", {"run_ids": [FINISHED, failed]}, "runs"),
        ("cancel_experiment_run", {"run_id": LONG}, "cancel_sent"),
    ]
    with anyio.fail_after(60):
        async with Client(params) as client:
            assert {t.name for t in (await client.list_tools()).tools} == READ_TOOLS | WRITE_TOOLS
            for tool, arguments, key in calls:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error and key in (result.structured_content or {}), tool
            resource = await client.read_resource(f"retab://experiment-runs/{FINISHED}")
            prompt = await client.get_prompt("triage-experiment-run", {"run_id": FINISHED})
    assert FINISHED in str(resource.contents[0]) and FINISHED in str(prompt.messages[0].content)


@pytest.mark.slow
async def test_the_real_entry_starts_without_a_key_and_explains_how_to_set_it() -> None:
    entry = json.loads((ROOT / "mcp.json").read_text())["mcpServers"]["retab"]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}  # no RETAB_API_KEY
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env, cwd=ROOT)
    with anyio.fail_after(60):
        async with Client(params) as client:
            assert {t.name for t in (await client.list_tools()).tools} == READ_TOOLS
            result = await client.call_tool("get_experiment_run", {"run_id": FINISHED})
    assert result.is_error
    assert isinstance(result.content[0], TextContent) and "RETAB_API_KEY" in result.content[0].text


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    async with serve("--transport", "http") as served:
        yield served.port


@pytest.fixture
async def sse_port() -> AsyncIterator[int]:
    async with serve("--transport", "sse") as served:
        yield served.port


@pytest.mark.slow
async def test_streamable_http_serves_both_tools_with_progress(http_port: int, mode: str) -> None:
    with anyio.fail_after(30):
        async with Client(f"http://127.0.0.1:{http_port}/mcp", mode=mode) as client:  # type: ignore[arg-type]
            await exercise(client)


@pytest.mark.slow
async def test_sse_serves_both_tools_with_progress(sse_port: int, mode: str) -> None:
    with anyio.fail_after(30):
        async with Client(sse_client(f"http://127.0.0.1:{sse_port}/sse"), mode=mode) as client:  # type: ignore[arg-type]
            await exercise(client)


PARITY_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_experiment_run", {"run_id": FINISHED}),
    ("wait_for_run", {"run_id": FINISHED}),
    ("wait_for_runs", {"run_ids": [FINISHED, opaque_id("exprun", "failed")]}),
    ("list_experiment_runs", {"status": "completed"}),
    ("list_experiment_run_results", {"run_id": FINISHED, "status": "error"}),
    ("get_experiment_run_metrics", {"run_id": FINISHED, "view": "summary"}),
    ("triage_experiment_run", {"run_id": opaque_id("exprun", "failed")}),
    ("compare_experiment_runs", {"base_run_id": opaque_id("exprun", "older"), "candidate_run_id": FINISHED}),
    ("list_experiments", {"workflow_id": opaque_id("workflow", "wf-invoices-tuned")}),
    ("get_experiment", {"experiment_id": opaque_id("exp", "invoices-tuned")}),
    ("start_experiment_run", {"experiment_id": opaque_id("exp", "invoices-tuned")}),
    ("cancel_experiment_run", {"run_id": FINISHED}),
    # every kind of run
    ("get_run", {"run_id": workflow_run_id("awaiting_review")}),
    ("list_runs", {"kind": "eval", "status": "completed"}),
    ("triage_run", {"run_id": workflow_run_id("failed")}),
    ("list_eval_results", {"run_id": eval_run_id("candidate"), "outcome": "failed"}),
    ("compare_eval_runs", {"candidate_run_id": eval_run_id("candidate")}),
    ("start_eval_run", {"workflow_id": opaque_id("workflow", "wf-support-replies")}),
]
WALL_CLOCK_KEYS = {"started_at", "created_at", "elapsed_s"}  # demo runs are dated from when each process started


def without_wall_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK_KEYS}  # pyright: ignore
    if isinstance(value, list):
        return [without_wall_clock(v) for v in value]  # pyright: ignore
    return value


@pytest.mark.slow
async def test_every_tool_answers_identically_over_stdio_http_and_sse() -> None:
    writes = {"RETAB_MCP_ALLOW_WRITES": "1"}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "retab_mcp", "--demo"], env={"PATH": os.environ["PATH"], **writes}
    )
    answers: dict[str, list[Any]] = {}
    with anyio.fail_after(60):
        async with (
            serve("--transport", "http", env=writes) as http_served,
            serve("--transport", "sse", env=writes) as sse_served,
            Client(params) as over_stdio,
            Client(f"{http_served.url}/mcp") as over_http,
            Client(sse_client(f"{sse_served.url}/sse")) as over_sse,
        ):
            for name, client in (("stdio", over_stdio), ("http", over_http), ("sse", over_sse)):
                tools = {t.name for t in (await client.list_tools()).tools}
                assert tools == {call for call, _ in PARITY_CALLS}
                answers[name] = []
                for tool, arguments in PARITY_CALLS:
                    result = await client.call_tool(tool, arguments)
                    assert not result.is_error, (name, tool)
                    answers[name].append(without_wall_clock(result.structured_content))
    assert answers["stdio"] == answers["http"] == answers["sse"]


@pytest.mark.slow
async def test_a_client_cancel_over_http_leaves_the_session_usable(http_port: int) -> None:
    with anyio.fail_after(20):
        async with Client(f"http://127.0.0.1:{http_port}/mcp", mode="legacy") as client:
            with anyio.move_on_after(1):
                await client.call_tool("wait_for_run", {"run_id": LONG, "timeout_s": 45})
            # the session is still usable after the cancel: the server was not lost
            again = await client.call_tool("get_experiment_run", {"run_id": FINISHED})
    assert not again.is_error


@pytest.mark.slow
async def test_waits_from_twenty_http_sessions_share_one_poll_loop() -> None:
    """Twenty sessions over streamable HTTP wait on one run; one more waits alone on a twin run."""
    import httpx2

    from retab_mcp.base.config import Settings
    from retab_mcp.simulator import SimulatedRetab
    from retab_mcp.simulator.loopback import Loopback
    from retab_mcp.tools.server import build_server
    from retab_mcp.transports.http import HttpOptions, build_app

    sim = SimulatedRetab()
    shared, alone = (
        sim.add_run(duration_s=4, queue_s=0.5, documents=4),
        sim.add_run(duration_s=4, queue_s=0.5, documents=4),
    )
    settings = Settings(api_key="sk_test_coalesce", base_url="http://retab.test")
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim))
    statuses: list[str] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            mcp_http = Loopback(build_app(server, HttpOptions(), settings).app, group, lifespan="on")
            mcp_http.start()

            async def session(run_id: str) -> None:
                async with Client(f"{mcp_http.url}/mcp") as client:
                    result = await client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 20})
                    statuses.append((result.structured_content or {})["status"])

            async with anyio.create_task_group() as sessions:
                for _ in range(20):
                    sessions.start_soon(session, shared)
                sessions.start_soon(session, alone)
            await mcp_http.stop()
    count = {run_id: sum(r.path.endswith(run_id) for r in sim.requests) for run_id in (shared, alone)}
    assert statuses == ["completed"] * 21
    # 20 waits on one run poll it about as often as one wait on another; +1 for a first read that a
    # loaded machine put just before a poll rather than just after it.
    assert count[shared] <= 1.5 * count[alone] + 1
