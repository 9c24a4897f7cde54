"""Attacks and crowds against a real `retab-mcp` process, each a row of RELIABILITY.md ("Many callers,
hostile callers"): twenty sessions starting one experiment, a lost answer raced by a second session, a
caller key of one character, a thousand keys, nested JSON over HTTP, and a gate that fails.

The simulated API runs in this process on a real loopback port (tests/helpers.py `LoopbackAPI`); the server
is a subprocess over HTTP (tests/processes.py `serve`). Replicas, Redis and nginx are in test_replicas.py;
OAuth in test_oauth.py; stdio input in test_stdio_input.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab

from .helpers import TEST_KEY, LoopbackAPI, all_at_once, data_of
from .processes import serve

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALLERS = 20
ACCEPT = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


def posts(sim: SimulatedRetab) -> int:
    return sum(1 for r in sim.requests if r.method == "POST" and r.path.endswith("/experiments/runs"))


def runs_of(sim: SimulatedRetab, experiment_id: str) -> list[str]:
    return [r.id for r in sim.world.runs if r.experiment.id == experiment_id]


@asynccontextmanager
async def api_and_server(
    sim: SimulatedRetab, *flags: str, env: dict[str, str] | None = None, stderr: bytearray | None = None
) -> AsyncIterator[str]:
    """The simulated API on loopback and `retab-mcp --transport http` over it; yields the server's base URL."""
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        full_env = {"RETAB_API_BASE_URL": api.url, "RETAB_API_KEY": TEST_KEY, **(env or {})}
        async with serve("--transport", "http", *flags, env=full_env, demo=False) as served:
            try:
                yield served.url
            finally:
                if stderr is not None:
                    stderr += served.stderr
        await api.stop()
        group.cancel_scope.cancel()


@asynccontextmanager
async def agents(url: str, count: int, headers: dict[str, str] | None = None) -> AsyncIterator[list[Client]]:
    """`count` MCP sessions of the server at `url`, each on a connection of its own."""
    async with AsyncExitStack() as stack:
        clients: list[Client] = []
        for _ in range(count):
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers or {}, timeout=60))
            transport = streamable_http_client(f"{url}/mcp", http_client=http)
            clients.append(await stack.enter_async_context(Client(transport)))  # type: ignore[arg-type]
        yield clients


async def test_twenty_sessions_of_one_server_starting_one_experiment_at_once_make_one_run_all_name() -> None:
    sim = SimulatedRetab(clock=RealClock())
    experiment = sim.add_experiment("crowd", documents=12)
    async with api_and_server(sim, env={"RETAB_MCP_ALLOW_WRITES": "1"}) as url, agents(url, CALLERS) as clients:
        arguments = {"experiment_id": experiment}
        results = await all_at_once([lambda c=c: c.call_tool("start_experiment_run", arguments) for c in clients])
    data = [data_of(result) for result in results]
    (run_id,) = runs_of(sim, experiment)
    assert posts(sim) == 1
    assert {d["run_id"] for d in data} == {run_id}
    assert sorted(d["outcome"] for d in data) == ["already_running"] * (CALLERS - 1) + ["started"]


@pytest.mark.parametrize("how", ["502", "cut"])
async def test_a_lost_answer_raced_by_a_second_session_makes_one_run_and_both_name_it(how: str) -> None:
    sim = SimulatedRetab(clock=RealClock())
    experiment = sim.add_experiment("lost", documents=12)
    sim.drop_answer(how=how)  # type: ignore[arg-type]
    env = {"RETAB_MCP_ALLOW_WRITES": "1", "RETAB_READ_TIMEOUT_S": "2"}
    async with api_and_server(sim, env=env) as url, agents(url, 2) as clients:
        arguments = {"experiment_id": experiment}
        results = await all_at_once([lambda c=c: c.call_tool("start_experiment_run", arguments) for c in clients])
    data = [data_of(result) for result in results]
    (run_id,) = runs_of(sim, experiment)
    assert posts(sim) == 1
    assert [d["run_id"] for d in data] == [run_id, run_id]
    assert sorted(d["outcome"] for d in data) == ["already_running", "found_after_lost_answer"]


async def test_a_caller_key_too_short_to_be_secret_is_refused_and_no_other_tenant_s_log_is_touched() -> None:
    sim = SimulatedRetab(clock=RealClock())
    stderr = bytearray()
    flags = ("--per-user-keys", "--log-level", "DEBUG")
    async with api_and_server(sim, *flags, env={"RETAB_API_KEY": ""}, stderr=stderr) as url:
        async with httpx2.AsyncClient(timeout=20) as http:
            short = await http.post(f"{url}/mcp", json=INITIALIZE, headers={**ACCEPT, "X-Retab-Api-Key": "e"})
        async with agents(url, 1, {"X-Retab-Api-Key": TEST_KEY}) as (tenant,):
            listed = await tenant.call_tool("list_experiment_runs", {"limit": 3})
    assert short.status_code == 401 and "Retab API key" in short.json()["message"]
    assert not listed.is_error
    log = stderr.decode()
    assert "experiment" in log.lower()  # the tenant's calls were logged...
    assert "[redacted]" not in log  # ...and nothing in them was taken for a secret


def call_request(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


async def test_a_thousand_caller_keys_cost_little_memory_and_a_caller_s_call_stays_quick() -> None:
    """Each of 1,000 callers makes a call that reads from the API with its own key. Partitions share one
    HTTP pool and close nothing they should keep: 1,000 keys cost at most 50 MB (each had a pool and TLS
    context of its own: about 0.8 MB a key; and the logs' redaction grew with every key ever seen). The
    timing of /healthz throughout is benchmarks/tenants.py's to measure; here a bound no machine can miss."""
    sim = SimulatedRetab(clock=RealClock())
    stderr = bytearray()
    env = {"RETAB_API_KEY": "", "RETAB_MCP_CALL_LOG": "1"}
    listing = call_request("list_experiment_runs", {"limit": 1})
    async with api_and_server(sim, "--per-user-keys", "--stateless", env=env, stderr=stderr) as url:
        server = next(p for p in psutil.Process().children(recursive=True) if "retab_mcp" in " ".join(p.cmdline()))
        async with httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=20)) as http:

            async def tenant(key: str) -> None:
                answer = await http.post(f"{url}/mcp", json=listing, headers={**ACCEPT, "X-Retab-Api-Key": key})
                assert answer.status_code == 200 and '"isError":false' in answer.text, answer.text[:300]

            for i in range(20):  # warm up: the first partitions build what all share
                await tenant(f"sk_live_{i:06d}_warm_up_key_random_part")
            before = server.memory_info().rss
            with anyio.fail_after(180):
                for batch in range(0, 1_000, 20):
                    async with anyio.create_task_group() as group:
                        for i in range(batch, batch + 20):
                            group.start_soon(tenant, f"sk_live_{i:06d}_tenant_key_random_part")
            grown = server.memory_info().rss - before
            health = await http.get(f"{url}/healthz")
            with anyio.fail_after(10):
                await tenant(TEST_KEY)
    assert health.status_code == 200
    assert grown <= 50 * 2**20, f"{grown / 2**20:.0f} MB for 1,000 keys"
    assert b"[redacted]" not in stderr  # no tenant's log line was taken for another's key


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (("--transport", "http"), {}),
        (("--transport", "sse"), {}),
        (("--transport", "http"), {"RETAB_MCP_AUTH_TOKEN": "a-long-random-token-for-the-test-0123456789"}),
    ],
)
async def test_json_nested_a_hundred_thousand_deep_over_http_gets_a_4xx_and_no_traceback(
    flags: tuple[str, ...], env: dict[str, str]
) -> None:
    sim = SimulatedRetab(clock=RealClock())
    stderr = bytearray()
    deep = b"[" * 100_000
    async with api_and_server(sim, *flags, env=env, stderr=stderr) as url, httpx2.AsyncClient(timeout=20) as http:
        path = "/mcp" if "http" in flags else "/messages/?session_id=0123456789abcdef0123456789abcdef"
        answers = [
            await http.post(f"{url}{path}", content=deep, headers={**ACCEPT, "content-type": "application/json"})
            for _ in range(5)
        ]
        still = await http.get(f"{url}/healthz")
    assert {a.status_code // 100 for a in answers} == {4}, [a.status_code for a in answers]
    assert still.status_code == 200
    assert b"Traceback" not in stderr


async def test_an_unforeseen_failure_in_a_gate_is_a_500_and_one_log_line_not_a_traceback_each() -> None:
    """Made to fail through the only door a test has into a running gate: a request the ASGI server passes
    on with a header no gate expects to be malformed (raw bytes that are not latin-1 text are fine; what
    fails is in-process, so this one is held in process)."""
    from retab_mcp.transports.failures import FailuresInOneLine

    calls: list[int] = []

    async def failing_gate(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(1)
        raise RecursionError("maximum recursion depth exceeded")

    records: list[str] = []
    import logging

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.INFO:
                records.append(record.getMessage())

    logger = logging.getLogger("retab_mcp.transports.failures")
    handler = Keep()
    logger.addHandler(handler)
    try:
        app = FailuresInOneLine(failing_gate)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as http:
            answers = [await http.post("/mcp", content=b"{}") for _ in range(50)]
    finally:
        logger.removeHandler(handler)
    assert {a.status_code for a in answers} == {500} and answers[0].json()["error"] == "internal_error"
    assert len(calls) == 50 and len(records) == 1 and "RecursionError" in records[0]


async def test_twenty_tenants_waiting_at_once_each_see_their_own_run_and_never_a_neighbour_s() -> None:
    sim = SimulatedRetab(clock=RealClock())
    keys = [f"sk_live_org{i:02d}_0123456789abcdefSECRET" for i in range(CALLERS)]
    runs = []
    for key in keys:
        run_id = sim.add_run(duration_s=3, documents=2)
        sim.owners[run_id] = key
        runs.append(run_id)
    stderr = bytearray()
    async with (
        api_and_server(sim, "--per-user-keys", env={"RETAB_API_KEY": ""}, stderr=stderr) as url,
        AsyncExitStack() as stack,
    ):
        tenants = [await stack.enter_async_context(agents(url, 1, {"X-Retab-Api-Key": key})) for key in keys]
        own = await all_at_once(
            [
                lambda i=i: tenants[i][0].call_tool("wait_for_run", {"run_id": runs[i], "timeout_s": 20})
                for i in range(CALLERS)
            ]
        )
        neighbours = await all_at_once(
            [
                lambda i=i: tenants[i][0].call_tool("get_experiment_run", {"run_id": runs[(i + 1) % CALLERS]})
                for i in range(CALLERS)
            ]
        )
    for i, result in enumerate(own):
        data = data_of(result)
        assert data["run_id"] == runs[i] and data["status"] == "completed"
    assert all(result.is_error and "was found" in str(result.content) for result in neighbours)
    for run_id, key in zip(runs, keys, strict=True):
        asked_with = {r.headers.get("authorization") for r in sim.requests if r.path.endswith(run_id)}
        assert f"Bearer {key}" in asked_with  # polled with its owner's key (and asked by the neighbour, refused)
    log = stderr.decode()
    assert not any(key in log or key[-16:] in log for key in keys)
