"""`retab-mcp demo`: what an agent sees, end to end, with no key and no network.

Starts `retab-mcp --demo` over stdio as a host would, connects with the MCP client, lists the tools,
reads a finished and a failed run, triages the finished one, waits on a running one with live progress,
waits on a workflow run that a review gate holds (the wait ends at once: a person must act), compares two
eval runs (a block edit broke two evals), then the experiment loop (start, wait, compare), and prints
exactly what the agent receives (text and structured content) with its size.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, cast

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from ..simulator.app import DEMO_LOOP_EXPERIMENT
from ..simulator.eval_world import eval_run_id
from ..simulator.scenario import opaque_id
from ..simulator.workflow_world import workflow_run_id
from ..tools import names
from .console import ProgressBar

RULE = "─" * 78


def run_demo() -> int:
    return anyio.run(_walkthrough)


async def _walkthrough() -> int:
    started = time.monotonic()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "retab_mcp", "--demo"],
        # Writes on: the walkthrough starts a run, of the simulated API (nothing is billed).
        env={"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", "RETAB_MCP_ALLOW_WRITES": "1"},
    )
    _say("retab-mcp demo: the server runs as a host would start it (stdio subprocess, simulated Retab API).")
    _say(f"$ {sys.executable} -m retab_mcp --demo")
    async with Client(params) as client:
        tools = await client.list_tools()
        _section(f"tools/list: {len(tools.tools)} tools")
        for tool in tools.tools:
            first = (tool.description or "").split(". ")[0].removesuffix(".") + "."
            parameters = cast(dict[str, Any], tool.input_schema.get("properties") or {})
            _say(f"• {tool.name}({', '.join(parameters)}) — {first}")

        finished, failed, young = (opaque_id("exprun", role) for role in ("latest", "failed", "young"))
        _section(f"{names.GET_RUN}(run_id={finished!r})  a finished run")
        _show(await client.call_tool(names.GET_RUN, {"run_id": finished}))
        _section(f"{names.GET_RUN}(run_id={failed!r})  a failed run with a 50 KB stack trace")
        _show(await client.call_tool(names.GET_RUN, {"run_id": failed}))
        _section(f"{names.TRIAGE}(run_id={finished!r})  why it scored below its parent")
        _show(await client.call_tool(names.TRIAGE, {"run_id": finished}))

        _section(f"{names.WAIT_RUN}(run_id={young!r})  a run still going, with progress")
        bar = ProgressBar(sys.stdout)

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            bar.update(progress, total, message)

        result = await client.call_tool(
            names.WAIT_RUN, {"run_id": young, "timeout_s": 45}, progress_callback=on_progress
        )
        bar.close()
        _show(result)

        await _other_kinds(client)
        await _the_loop(client, bar)

        _section("a mistake the agent can fix")
        _show(await client.call_tool(names.GET_RUN, {"run_id": "exprun 2"}))
    _section(f"done in {time.monotonic() - started:.0f}s")
    _say("Add it to a host: see mcp.json (entries `retab` and `retab-demo`) and the README.")
    return 0


async def _other_kinds(client: Client) -> None:
    """Workflow runs and eval runs: a wait that a review gate ends at once, and an eval run that regressed."""
    gated = workflow_run_id("awaiting_review")
    _section(f"{names.WAIT_RUN}(run_id={gated!r})  a workflow run held at a review gate")
    _show(await client.call_tool(names.WAIT_RUN, {"run_id": gated, "timeout_s": 45}))
    candidate = eval_run_id("candidate")
    _section(f"{names.COMPARE_EVALS}(candidate_run_id={candidate!r})  did the block edit break evals?")
    _show(await client.call_tool(names.COMPARE_EVALS, {"candidate_run_id": candidate}))


async def _the_loop(client: Client, bar: ProgressBar) -> None:
    """The experiment loop: the block was edited, so start a run, wait for it, and ask whether it helped."""
    experiment = opaque_id("exp", DEMO_LOOP_EXPERIMENT)
    _section(f"{names.GET_EXPERIMENT}(experiment_id={experiment!r})  the block was edited since the last run")
    view = await client.call_tool(names.GET_EXPERIMENT, {"experiment_id": experiment})
    _show(view)
    previous = cast(dict[str, Any], view.structured_content or {}).get("latest_run_id")
    _section(f"{names.START}(experiment_id={experiment!r})  a new run of the edited block")
    started = await client.call_tool(names.START, {"experiment_id": experiment})
    _show(started)
    run_id = cast(dict[str, Any], started.structured_content or {}).get("run_id")
    _section(f"{names.WAIT_RUN}(run_id={run_id!r})  until it ends")

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        bar.update(progress, total, message)

    waited = await client.call_tool(names.WAIT_RUN, {"run_id": run_id, "timeout_s": 45}, progress_callback=on_progress)
    bar.close()
    _say("  │ " + _text(waited).splitlines()[0])
    _section(f"{names.COMPARE}(base_run_id={previous!r}, candidate_run_id={run_id!r})  did the edit help?")
    _show(await client.call_tool(names.COMPARE, {"base_run_id": previous, "candidate_run_id": run_id}))


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def _show(result: CallToolResult) -> None:
    text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
    structured = json.dumps(result.structured_content, separators=(",", ":")) if result.structured_content else ""
    _say(f"isError={result.is_error}  text:")
    for line in text.splitlines():
        _say("  │ " + line)
    if structured:
        _say("structuredContent:")
        _say("  │ " + structured)
    _say(f"({len(text.encode()) + len(structured.encode())} bytes in all)")


def _section(title: str) -> None:
    _say("")
    _say(RULE)
    _say(title)


def _say(line: str) -> None:
    print(line, flush=True)
