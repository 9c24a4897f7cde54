"""What a platform team probes and scrapes on a real HTTP server process: /healthz, /readyz, /metrics, and
one JSON log line per tool call, none of them carrying a key or a token."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab

from .helpers import FINISHED, TEST_KEY, LoopbackAPI
from .processes import serve

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOKEN = "tok_ops_0123456789abcdefSECRET"


@asynccontextmanager
async def http_server(env: dict[str, str], stderr: bytearray) -> AsyncIterator[str]:
    """A `retab-mcp --transport http` process; yields its base URL, and keeps its stderr in `stderr`."""
    async with serve("--transport", "http", env={"RETAB_API_KEY": TEST_KEY, **env}, demo=False) as served:
        try:
            yield served.url
        finally:
            stderr += served.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket closes


async def test_health_readiness_metrics_and_the_call_log() -> None:
    stderr = bytearray()
    answers: dict[str, httpx2.Response] = {}
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(SimulatedRetab(clock=RealClock()), group)
        api.start()
        env = {"RETAB_API_BASE_URL": api.url, "RETAB_MCP_AUTH_TOKEN": TOKEN, "RETAB_MCP_CALL_LOG": "1"}
        async with http_server(env, stderr) as base, httpx2.AsyncClient(timeout=20) as http:
            answers["health"] = await http.get(
                f"{base}/healthz", headers={"Host": "probe.internal"}
            )  # any Host: a prober's
            answers["ready"] = await http.get(f"{base}/readyz")
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                httpx2.AsyncClient(headers=auth, timeout=20) as mcp_http,
                Client(streamable_http_client(f"{base}/mcp", http_client=mcp_http)) as client,  # type: ignore[arg-type]
            ):
                await client.call_tool("get_experiment_run", {"run_id": FINISHED})
                await client.call_tool("get_experiment_run", {"run_id": "exprun_nope"})
                await client.call_tool("no_such_tool", {})
            answers["refused"] = await http.get(f"{base}/metrics")
            answers["metrics"] = await http.get(f"{base}/metrics", headers=auth)
        await api.stop()
        group.cancel_scope.cancel()

    health, ready, refused, metrics = answers["health"], answers["ready"], answers["refused"], answers["metrics"]
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert refused.status_code == 401  # the counts are for the operator: the token is asked for
    text = metrics.text
    assert 'retab_mcp_tool_calls_total{outcome="ok",tool="get_experiment_run"} 1.0' in text
    assert 'retab_mcp_tool_calls_total{outcome="error",tool="get_experiment_run"} 1.0' in text
    assert 'tool="unknown"' in text and "no_such_tool" not in text  # a caller's text never becomes a label
    assert re.search(r'retab_mcp_api_requests_total\{status="200"\} [1-9]', text)
    assert "retab_mcp_active_waits 0.0" in text
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    calls = [line for line in lines if line.get("event") == "tool_call"]
    assert [(c["tool"], c["outcome"]) for c in calls] == [
        ("get_experiment_run", "ok"),
        ("get_experiment_run", "error"),
        ("unknown", "error"),
    ]
    assert calls[0]["retab_request_id"].startswith("req_sim_")
    assert all(isinstance(c["duration_ms"], float) for c in calls)
    shown = stderr.decode() + text
    assert TEST_KEY not in shown and TOKEN not in shown


async def test_readiness_says_when_the_api_cannot_be_reached() -> None:
    stderr = bytearray()
    env = {"RETAB_API_BASE_URL": f"http://127.0.0.1:{closed_port()}"}
    async with http_server(env, stderr) as base, httpx2.AsyncClient(timeout=20) as http:
        ready = await http.get(f"{base}/readyz")
        health = await http.get(f"{base}/healthz")
    assert health.status_code == 200  # alive, though not ready
    assert ready.status_code == 503
    assert ready.json()["status"] == "unready"
    assert "Could not reach the Retab API" in ready.json()["retab_api"]
