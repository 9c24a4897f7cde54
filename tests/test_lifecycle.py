"""Stdout hygiene over a whole stdio session, and shutdown: SIGINT, SIGTERM and stdin EOF end in-flight
waits promptly, exit 0 and print no traceback, over stdio and over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from retab_mcp.simulator.scenario import opaque_id

from .processes import listening_port
from .raw_stdio import raw_session

pytestmark = [pytest.mark.anyio, pytest.mark.eras]

FINISHED = opaque_id("exprun", "latest")
LONG = opaque_id("exprun", "long")
PROMPT_EXIT_S = 5  # "promptly": a wait of up to 50 s must not hold the exit


def wait_call(id_: int, token: str) -> dict[str, Any]:
    return {
        "name": "wait_for_run",
        "arguments": {"run_id": LONG, "timeout_s": 45},
        "_meta": {"progressToken": token},
    }


def is_progress(token: str) -> Any:
    return lambda m: m.get("method") == "notifications/progress" and m["params"]["progressToken"] == token


@pytest.mark.slow
async def test_every_byte_on_stdout_is_json_rpc_across_errors_and_cancellations() -> None:
    with anyio.fail_after(30):
        async with raw_session() as session:
            await session.call(1, "tools/list")
            await session.call(2, "tools/call", {"name": "get_experiment_run", "arguments": {"run_id": "not valid!"}})
            await session.call(3, "tools/call", {"name": "get_experiment_run", "arguments": {"run_id": "exprun_x"}})
            await session.call(4, "tools/call", {"name": "no_such_tool", "arguments": {}})
            await session.call(5, "no/such/method")
            await session.call(6, "tools/call", {"name": "wait_for_runs", "arguments": {"run_ids": "not a list"}})
            await session.call(7, "resources/read", {"uri": "retab://experiment-runs/exprun_x"})
            await session.call(8, "prompts/get", {"name": "triage-experiment-run", "arguments": {"run_id": "a b"}})
            await session.send(b"this is not json\n")
            await session.call(9, "tools/call", wait_call(9, "w9"))
            await session.until(is_progress("w9"))
            await session.send(
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9, "reason": "test"}}
            )
            await session.call(10, "ping")
            await session.answer(10)
            await session.call(11, "tools/call", {"name": "get_experiment_run", "arguments": {"run_id": FINISHED}})
            last = await session.answer(11)
            answers = {i: await session.answer(i) for i in range(1, 9)}
            _, err = await session.close()
    for line in session.lines:
        assert json.loads(line)["jsonrpc"] == "2.0", line
    assert last["result"]["structuredContent"]["status"] == "completed"  # the server still serves
    assert answers[2]["result"]["isError"] and answers[3]["result"]["isError"] and answers[4]["result"]["isError"]
    assert answers[5]["error"]["code"] == -32601
    assert b"Traceback" not in err and session.process.returncode == 0


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "stdin EOF"])
@pytest.mark.slow
async def test_stdio_ends_an_inflight_wait_promptly_and_exits_0(how: str) -> None:
    with anyio.fail_after(30):
        async with raw_session() as session:
            await session.call(1, "tools/call", wait_call(1, "w1"))
            await session.until(is_progress("w1"))
            with anyio.fail_after(PROMPT_EXIT_S):
                if how == "stdin EOF":
                    assert session.process.stdin is not None
                    await session.process.stdin.aclose()
                else:
                    session.process.send_signal(getattr(signal, how))
                await session.process.wait()
            _, err = await session.rest()
    assert session.process.returncode == 0
    assert b"Traceback" not in err, err.decode()
    for line in session.lines:
        json.loads(line)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
@pytest.mark.slow
async def test_http_answers_an_inflight_wait_then_exits_0(how: str) -> None:
    command = [sys.executable, "-m", "retab_mcp", "--demo", "--transport", "http", "--port", "0"]
    results: list[Any] = []
    with anyio.fail_after(30):
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
            assert process.stderr is not None
            port, seen = await listening_port(process.stderr)
            waiting = anyio.Event()

            async def wait_for_long_run() -> None:
                try:
                    async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                        # As a host does: it lists the tools first. Unlisted, the client fetches the listing
                        # after the answer, to check it against the output schema, and would find the server
                        # gone by then.
                        await client.list_tools()

                        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                            waiting.set()

                        results.append(
                            await client.call_tool(
                                "wait_for_run", {"run_id": LONG, "timeout_s": 45}, progress_callback=on_progress
                            )
                        )
                except* httpx2.TransportError:
                    # Closing the session after the answer may find the server gone already: that is the
                    # shutdown asked for. Without the answer, the assertions below fail.
                    pass

            async with anyio.create_task_group() as group:
                group.start_soon(wait_for_long_run)
                await waiting.wait()
                with anyio.fail_after(PROMPT_EXIT_S):
                    process.send_signal(getattr(signal, how))
                    await process.wait()
            err = seen + b"".join([chunk async for chunk in process.stderr])
    assert process.returncode == 0
    assert b"Traceback" not in err, err.decode()
    data = results[0].structured_content
    assert data["timed_out"] is True and "shutting down" in data["warning"]
