"""No secret ever shows: not the API key, not the HTTP auth token, in stdout, stderr, log records, tool
results or exception text, across every tool and every way a call can fail, and even when the API quotes
the key back in its error messages."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from retab_mcp.api.client import RetabClient
from retab_mcp.api.errors import RetabError
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY, LoopbackAPI
from .processes import listening_port

pytestmark = pytest.mark.anyio

TOKEN = "tok_0123456789abcdefSECRETTOKEN"
SECRETS = (TEST_KEY, TOKEN)

# Every API-side failure, applied to every tool.
FAILURES: list[dict[str, Any]] = [
    {},  # no failure
    {"status": 401},
    {"status": 403},
    {"status": 404},
    {"status": 422},
    {"status": 429, "retry_after": "90"},
    {"status": 500, "times": 99},
    {"kind": "malformed", "body": f'{{"key": "{TEST_KEY}", "broken'.encode()},
    {
        "kind": "raw",
        "status": 502,
        "body": f"<html>proxy saw {TEST_KEY}</html>".encode(),
        "media_type": "text/html",
        "times": 99,
    },
]


def tool_calls(sim: SimulatedRetab) -> list[tuple[str, dict[str, Any]]]:
    run, long = sim.run_ids["latest"], sim.run_ids["long"]
    return [
        ("get_experiment_run", {"run_id": run}),
        ("wait_for_run", {"run_id": long, "timeout_s": 2}),
        ("wait_for_runs", {"run_ids": [run, long], "timeout_s": 2}),
        ("list_experiment_runs", {}),
        ("list_experiment_run_results", {"run_id": run}),
        ("get_experiment_run_metrics", {"run_id": run}),
        ("triage_experiment_run", {"run_id": run}),
        ("cancel_experiment_run", {"run_id": long}),
    ]


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def everything_in(result: CallToolResult) -> str:
    return result.model_dump_json()


@pytest.fixture
def echoing_sim(clock: VirtualClock) -> SimulatedRetab:
    return SimulatedRetab(clock=clock, echo_key_in_errors=True)


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: f.get("kind", "status") + str(f.get("status", "")))
@pytest.mark.slow
async def test_no_tool_result_or_log_record_carries_a_secret(
    echoing_sim: SimulatedRetab, clock: VirtualClock, caplog: pytest.LogCaptureFixture, failure: dict[str, Any]
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True, auth_token=TOKEN, max_retries=1)
    if failure.get("status") == 401:
        echoing_sim.accepted_keys = {"sk_test_someone_else"}
    elif failure.get("status") == 403:
        echoing_sim.forbidden_keys = {TEST_KEY}
    elif failure:
        echoing_sim.inject(**{"times": 1, **failure})
    server = build_server(settings, transport=httpx2.ASGITransport(app=echoing_sim), clock=clock)
    results: list[CallToolResult] = []
    with anyio.fail_after(20):
        async with Client(server) as client:
            for tool, arguments in tool_calls(echoing_sim):
                results.append(await client.call_tool(tool, arguments))
    assert_clean(*map(everything_in, results), caplog.text, repr(settings))
    assert any(r.is_error for r in results) == bool(failure)  # the failure did happen


async def test_no_exception_text_carries_the_key(echoing_sim: SimulatedRetab) -> None:
    echoing_sim.accepted_keys = {"sk_test_someone_else"}
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, max_retries=0)
    async with RetabClient(settings, transport=httpx2.ASGITransport(app=echoing_sim)) as client:
        with pytest.raises(RetabError) as caught:
            await client.get_run("exprun_1")
    assert_clean(str(caught.value), repr(caught.value), "".join(map(str, caught.value.args)))
    assert "[redacted]" in str(caught.value)


@pytest.fixture
async def loopback_api() -> AsyncIterator[LoopbackAPI]:
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(SimulatedRetab(echo_key_in_errors=True), group)
        api.start()
        yield api
        await api.stop()


@pytest.mark.slow
async def test_a_stdio_process_never_prints_a_secret(loopback_api: LoopbackAPI) -> None:
    """The real server process, with the key and token in its environment, at DEBUG log level, through
    every tool while the API fails in ways that quote the key."""
    env = {**os.environ, "RETAB_API_KEY": TEST_KEY, "RETAB_MCP_AUTH_TOKEN": TOKEN, "RETAB_MCP_ALLOW_WRITES": "1"}
    env |= {"RETAB_API_BASE_URL": loopback_api.url, "RETAB_MAX_RETRIES": "0"}
    command = [sys.executable, "-m", "retab_mcp", "--log-level", "DEBUG"]
    loopback_api.sim.inject(status=422, times=1)  # its message quotes the key, and goes into the tool error
    loopback_api.sim.inject(status=500, times=2)
    loopback_api.sim.inject("raw", status=502, body=f"<html>{TEST_KEY}</html>".encode(), media_type="text/html")
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ] + [
        {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        for i, (tool, arguments) in enumerate(tool_calls(loopback_api.sim))
    ]
    with anyio.fail_after(30):
        async with await anyio.open_process(command, env=env) as process:
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            await process.stdin.send("".join(json.dumps(r) + "\n" for r in requests).encode())
            out = b""
            while out.count(b"\n") < len(requests) - 1:
                out += await process.stdout.receive()
            await process.stdin.aclose()
            await process.wait()
            out += b"".join([chunk async for chunk in process.stdout])
            err = b"".join([chunk async for chunk in process.stderr])
    assert_clean(out.decode(), err.decode())
    assert b"[redacted]" in out  # the API did quote the key, and it was removed


@pytest.mark.slow
async def test_an_http_process_never_prints_a_secret(loopback_api: LoopbackAPI) -> None:
    env = {
        **os.environ,
        "RETAB_API_KEY": TEST_KEY,
        "RETAB_MCP_AUTH_TOKEN": TOKEN,
        "RETAB_API_BASE_URL": loopback_api.url,
    }
    command = [sys.executable, "-m", "retab_mcp", "--transport", "http", "--port", "0", "--log-level", "DEBUG"]
    loopback_api.sim.accepted_keys = {"sk_test_someone_else"}
    answers: list[str] = []
    with anyio.fail_after(30):
        async with await anyio.open_process(command, env=env, stdin=subprocess.DEVNULL) as process:
            assert process.stderr is not None and process.stdout is not None
            port, err = await listening_port(process.stderr)
            url = f"http://127.0.0.1:{port}/mcp"
            async with httpx2.AsyncClient() as raw:
                answers.append((await raw.post(url, json={}, headers={"Authorization": "Bearer wrong"})).text)
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                for tool, arguments in tool_calls(loopback_api.sim)[:-1]:
                    answers.append(everything_in(await client.call_tool(tool, arguments)))
            process.terminate()
            await process.wait()
            err += b"".join([chunk async for chunk in process.stderr])
            out = b"".join([chunk async for chunk in process.stdout])
    assert_clean(*answers, err.decode(), out.decode())
    assert any("401" in a for a in answers)
