"""Per-user keys: one HTTP server for a team, each caller acting with its own Retab key, nothing shared.

The simulated API holds two organisations: a run of organisation A is "not found" to B's key, as on
Retab. A real `retab-mcp --transport http --per-user-keys` process serves both, with no key of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from retab_mcp.base.clock import RealClock
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.app import RecordedRequest
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.callers import Callers
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, LoopbackAPI, text_of
from .processes import serve

pytestmark = pytest.mark.anyio

KEY_A = "sk_live_orgA_0123456789abcdefSECRET"
KEY_B = "sk_live_orgB_9876543210fedcbaSECRET"
KEY_UNKNOWN = "sk_live_orgC_5555555555555555SECRET"
HEADER = "X-Retab-Api-Key"


@asynccontextmanager
async def team_server(api_url: str, stderr: bytearray) -> AsyncIterator[str]:
    """`retab-mcp --transport http --per-user-keys` over the API at `api_url`; yields its MCP URL and keeps
    everything it wrote to stderr in `stderr`."""
    env = {"RETAB_API_BASE_URL": api_url, "RETAB_API_KEY": ""}
    flags = ["--transport", "http", "--per-user-keys", "--log-level", "DEBUG"]  # all there is to log
    async with serve(*flags, env=env, demo=False) as served:
        try:
            yield f"{served.url}/mcp"
        finally:
            stderr += served.stderr


@asynccontextmanager
async def caller(url: str, key: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={HEADER: key}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,  # type: ignore[arg-type]
    ):
        yield client


def shown(result: CallToolResult) -> str:
    return result.model_dump_json(by_alias=True)


@pytest.mark.slow
async def test_a_caller_never_sees_another_organisation_s_run_even_while_its_owner_waits_on_it() -> None:
    sim = SimulatedRetab(clock=RealClock(), accepted_keys={KEY_A, KEY_B}, echo_key_in_errors=True)
    run_a = sim.add_run(duration_s=60, documents=5)
    sim.owners[run_a] = KEY_A
    a_is_polling = anyio.Event()

    def watch(request: RecordedRequest) -> None:
        if request.path.endswith(run_a) and request.headers.get("authorization") == f"Bearer {KEY_A}":
            a_is_polling.set()

    sim.request_hook = watch
    stderr = bytearray()
    results: dict[str, CallToolResult] = {}
    metrics = ""
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        async with (
            team_server(api.url, stderr) as url,
            caller(url, KEY_A) as a,
            caller(url, KEY_B) as b,
            caller(url, KEY_UNKNOWN) as c,
        ):

            async def a_waits() -> None:
                with anyio.fail_after(20):
                    results["a"] = await a.call_tool("wait_for_run", {"run_id": run_a, "timeout_s": 4})

            async with anyio.create_task_group() as waits:
                waits.start_soon(a_waits)
                with anyio.fail_after(10):
                    await a_is_polling.wait()  # A's poll loop for the run is live
                with anyio.fail_after(20):
                    results["b_wait"] = await b.call_tool("wait_for_run", {"run_id": run_a, "timeout_s": 2})
                    results["b_get"] = await b.call_tool("get_experiment_run", {"run_id": run_a})
                    results["b_list"] = await b.call_tool("list_experiment_runs", {"limit": 25})
                    results["c_get"] = await c.call_tool("get_experiment_run", {"run_id": run_a})
            async with httpx2.AsyncClient(timeout=10) as http:
                metrics = (await http.get(url.removesuffix("/mcp") + "/metrics")).text
        await api.stop()
        group.cancel_scope.cancel()

    assert not results["a"].is_error and (results["a"].structured_content or {})["status"] == "running"
    for name in ("b_wait", "b_get"):
        assert results[name].is_error, name
        assert f"No experiment run '{run_a}' was found" in text_of(results[name]), text_of(results[name])
    assert not results["b_list"].is_error, text_of(results["b_list"])
    listed = [row["run_id"] for row in (results["b_list"].structured_content or {})["runs"]]
    assert run_a not in listed
    assert results["c_get"].is_error  # the API quoted C's key in its 401: the caller sees it redacted
    assert 'retab_mcp_tool_calls_total{outcome="error",tool="wait_for_run"} 1.0' in metrics
    everything = "".join(shown(r) for r in results.values()) + stderr.decode(errors="replace") + metrics
    for key in (KEY_A, KEY_B, KEY_UNKNOWN):
        assert key not in everything
        assert key[-16:] not in everything
    # The server used no key of its own: every request the API saw carried a caller's.
    sent = {r.headers.get("authorization") for r in sim.requests}
    assert sent <= {f"Bearer {KEY_A}", f"Bearer {KEY_B}", f"Bearer {KEY_UNKNOWN}"}


@pytest.mark.slow
async def test_a_request_without_a_caller_key_is_refused_with_what_to_send() -> None:
    stderr = bytearray()
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(SimulatedRetab(clock=RealClock()), group)
        api.start()
        async with team_server(api.url, stderr) as url, httpx2.AsyncClient(timeout=10) as http:
            initialize: dict[str, Any] = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "0"},
                },
            }
            accept = {"Accept": "application/json, text/event-stream"}
            missing = await http.post(url, json=initialize, headers=accept)
            placeholder = await http.post(url, json=initialize, headers={**accept, HEADER: "sk_live_REPLACE_ME"})
            assert missing.status_code == 401
            assert HEADER in missing.json()["message"]
            assert placeholder.status_code == 401
            assert "placeholder" in placeholder.json()["message"]
        await api.stop()
        group.cancel_scope.cancel()


def test_per_user_keys_refuse_a_key_of_the_server_s_own() -> None:
    env = {**os.environ, "RETAB_API_KEY": KEY_A, "RETAB_MCP_PER_USER_KEYS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "retab_mcp", "--transport", "http", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "unset RETAB_API_KEY" in done.stderr
    assert KEY_A not in done.stderr + done.stdout


def test_per_user_keys_are_for_http_and_sse_only() -> None:
    env = {**os.environ, "RETAB_API_KEY": "", "RETAB_MCP_PER_USER_KEYS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "retab_mcp"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode != 0
    assert "--transport http" in done.stderr


async def test_an_in_process_call_without_a_request_says_to_send_the_header() -> None:
    sim = SimulatedRetab(clock=VirtualClock(start=1_000.0))
    server = build_server(Settings(base_url=SIM_URL, per_user_keys=True), transport=httpx2.ASGITransport(app=sim))
    async with Client(server) as client:
        result = await client.call_tool("get_experiment_run", {"run_id": sim.run_ids["latest"]})
    assert result.is_error
    assert HEADER in text_of(result)


async def test_each_key_has_a_partition_of_its_own_named_by_a_keyed_hash() -> None:
    clock = VirtualClock(start=1_000.0)
    settings = Settings(base_url=SIM_URL, per_user_keys=True, max_callers=2, caller_idle_s=60)
    async with anyio.create_task_group() as group:
        callers = Callers(settings, clock, group)
        a, again, b = callers.state_for(KEY_A), callers.state_for(KEY_A), callers.state_for(KEY_B)
        assert a is again and a is not b
        assert a.watcher is not b.watcher and a.client is not b.client
        assert a.settings.api_key == KEY_A and b.settings.api_key == KEY_B
        name = callers.partition_of(KEY_A)
        assert KEY_A not in name and KEY_A[-12:] not in name
        assert Callers(settings, clock, group).partition_of(KEY_A) != name  # a secret of its own per server
        callers.state_for(KEY_UNKNOWN)  # a third: the least recently used (A) is closed
        assert len(callers) == 2
        assert callers.state_for(KEY_A) is not a
        clock.advance(61)
        await callers.close_idle()
        assert len(callers) == 0
        await callers.aclose()
        group.cancel_scope.cancel()
