"""Attacks on a real HTTP or SSE server process over loopback: session floods, stream floods, half-sent
requests up to the file limit, and shutdown with streams open. Each is bounded in time and count."""

from __future__ import annotations

import re
import signal
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.types import CallToolResult

from .processes import serve

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "flood", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
ACCEPT = {"Accept": "application/json, text/event-stream"}

pytestmark = pytest.mark.anyio


NEVER_USED = re.compile(r"Closed \d+ idle session\(s\), (\d+) of them never used")


async def open_session(http: httpx2.AsyncClient, url: str) -> str:
    answer = await http.post(url, json=INITIALIZE, headers=ACCEPT)
    assert answer.status_code == 200, answer.text
    return answer.headers["mcp-session-id"]


@pytest.mark.slow
async def test_a_flood_of_unclosed_sessions_leaves_room_for_newcomers_and_keeps_used_sessions() -> None:
    """One client opens 1,500 sessions and closes none (the attack took RSS from 76 to 443 MiB and then
    locked everyone out with 503). With a bound of 40, every opening is served, the oldest unused sessions
    are closed to make room, a session that made calls survives the flood, and memory stays flat."""
    limits = {"RETAB_MCP_MAX_SESSIONS": "40", "RETAB_MCP_MAX_SESSIONS_PER_CLIENT": "40"}
    with anyio.fail_after(90):
        async with (
            serve("--transport", "http", "--log-level", "INFO", env=limits) as served,
            httpx2.AsyncClient(timeout=10) as http,
        ):
            url = f"http://127.0.0.1:{served.port}/mcp"
            async with Client(url, mode="legacy") as used:
                await used.call_tool("list_experiment_runs", {"limit": 1})
                warm = [await open_session(http, url) for _ in range(60)]
                rss_after_warm_up = served.rss_kib()
                statuses: list[int] = []

                async def flood(count: int) -> None:
                    for _ in range(count):
                        answer = await http.post(url, json=INITIALIZE, headers=ACCEPT)
                        statuses.append(answer.status_code)

                async with anyio.create_task_group() as group:
                    for _ in range(10):
                        group.start_soon(flood, 150)
                rss_after_flood = served.rss_kib()
                survivor = await used.call_tool("list_experiment_runs", {"limit": 1})
                async with Client(url, mode="legacy") as newcomer:
                    fresh = await newcomer.call_tool("list_experiment_runs", {"limit": 1})
                evicted = await http.post(url, json=INITIALIZED, headers={**ACCEPT, "mcp-session-id": warm[0]})
    assert statuses == [200] * 1500  # nobody was locked out
    assert not survivor.is_error and not fresh.is_error
    assert evicted.status_code == 404  # the oldest unused session made room
    # Unbounded, 1,500 sessions held about 54 MB; bounded, growth stays within allocator noise.
    assert rss_after_flood - rss_after_warm_up < 20_000, (rss_after_warm_up, rss_after_flood)
    assert "Traceback" not in served.text


@pytest.mark.slow
async def test_sessions_that_only_made_the_handshake_are_closed_soon() -> None:
    env = {"RETAB_MCP_UNUSED_SESSION_IDLE_S": "1"}
    with anyio.fail_after(30):
        async with (
            serve("--transport", "http", "--log-level", "INFO", env=env) as served,
            httpx2.AsyncClient(timeout=10) as http,
        ):
            url = f"http://127.0.0.1:{served.port}/mcp"
            async with Client(url, mode="legacy") as used:
                await used.call_tool("list_experiment_runs", {"limit": 1})
                unused = [await open_session(http, url) for _ in range(5)]
                # A sweep may find some of the five past their second before the others: count over its lines.
                await served.wait_until(lambda log: sum(map(int, NEVER_USED.findall(log))) >= 5)
                gone = [
                    (await http.post(url, json=INITIALIZED, headers={**ACCEPT, "mcp-session-id": key})).status_code
                    for key in unused
                ]
                still = await used.call_tool("list_experiment_runs", {"limit": 1})
    assert gone == [404] * 5
    assert not still.is_error  # a session that made a call keeps the long idle timeout


@pytest.mark.slow
async def test_a_flood_of_sse_streams_is_bounded_and_the_oldest_end_cleanly() -> None:
    """SSE streams had no bound (~67 KB each). With a bound of 20, the 60th stream still opens, the
    oldest idle ones are ended as a finished response (no broken chunk), and a newcomer is served."""
    limits = {"RETAB_MCP_MAX_SESSIONS": "20", "RETAB_MCP_MAX_SESSIONS_PER_CLIENT": "20"}
    ended: list[int] = []
    results: list[CallToolResult] = []
    with anyio.fail_after(60):
        async with (
            serve("--transport", "sse", "--log-level", "INFO", env=limits) as served,
            httpx2.AsyncClient(timeout=30) as http,
        ):
            url = f"http://127.0.0.1:{served.port}/sse"
            opened = [anyio.Event() for _ in range(60)]

            async def listen(index: int) -> None:
                async with http.stream("GET", url) as stream:
                    assert stream.status_code == 200
                    async for chunk in stream.aiter_bytes():
                        if b"session_id=" in chunk:
                            opened[index].set()
                ended.append(index)  # the body ended whole; a cut stream raises instead

            async with anyio.create_task_group() as group:
                for index in range(60):
                    group.start_soon(listen, index)
                    await opened[index].wait()
                async with Client(sse_client(url)) as newcomer:  # type: ignore[arg-type]
                    results.append(await newcomer.call_tool("list_experiment_runs", {"limit": 1}))
                group.cancel_scope.cancel()
    assert [result.is_error for result in results] == [False]
    assert len(ended) >= 40 and set(ended[:40]) == set(range(40)), ended  # the oldest made room
    assert "Traceback" not in served.text


@pytest.mark.slow
async def test_half_sent_requests_up_to_the_file_limit_do_not_lock_out_a_normal_client() -> None:
    """300 connections that send headers a byte at a time, against a server with a file limit of 256
    (the attack held connections forever; at the limit, normal clients timed out and stderr took
    591,869 tracebacks in 30 s). Each trickler is closed within the read timeout although it keeps
    sending, connections stay under the cap, a normal client is served meanwhile, and stderr stays short."""
    closed: list[int] = []
    results: list[CallToolResult] = []
    with anyio.fail_after(60):
        async with serve(
            "--transport", "http", "--log-level", "INFO", env={"RETAB_MCP_REQUEST_READ_TIMEOUT_S": "2"}, nofile=256
        ) as served:

            async def trickle(index: int) -> None:
                try:
                    async with await anyio.connect_tcp("127.0.0.1", served.port) as sock:
                        await sock.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        while True:
                            await sock.send(b"X")
                            # The attacker's pace (a byte every 0.2 s), not a wait for the server.
                            with anyio.move_on_after(0.2):
                                await sock.receive()
                                break  # an answer or the end: the server closed it
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, OSError):
                    pass
                closed.append(index)

            # The group ends once the server has closed every trickler: 2 s read timeout, with room.
            with anyio.fail_after(15):
                async with anyio.create_task_group() as group:
                    for index in range(300):
                        group.start_soon(trickle, index)
                    async with Client(f"http://127.0.0.1:{served.port}/mcp") as client:
                        results.append(await client.call_tool("list_experiment_runs", {"limit": 1}))
    log = served.text
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    assert [result.is_error for result in results] == [False]
    assert len(closed) == 300
    assert "Traceback" not in log and len(warnings) < 20, log[-2000:]


@pytest.mark.parametrize("transport", ["http", "sse"])
@pytest.mark.slow
async def test_sigterm_with_open_streams_ends_them_cleanly_and_exits_0(transport: str) -> None:
    """10 GET streams open at SIGTERM (they were cut mid-response, with 10 tracebacks and "timeout
    graceful shutdown exceeded", in 2.4 s): streamable HTTP's GET streams, and SSE streams."""
    ended: list[int] = []
    with anyio.fail_after(30):
        async with (
            serve("--transport", transport, "--log-level", "INFO") as served,
            httpx2.AsyncClient(timeout=30) as http,
        ):
            opened = [anyio.Event() for _ in range(10)]

            async def listen(index: int) -> None:
                if transport == "http":
                    url = f"http://127.0.0.1:{served.port}/mcp"
                    key = await open_session(http, url)
                    headers = {"mcp-session-id": key, "Accept": "text/event-stream"}
                    await http.post(url, json=INITIALIZED, headers={**ACCEPT, **headers})
                    request: dict[str, Any] = {"url": url, "headers": headers}
                else:
                    request = {"url": f"http://127.0.0.1:{served.port}/sse"}
                async with http.stream("GET", **request) as stream:
                    assert stream.status_code == 200
                    opened[index].set()
                    async for _ in stream.aiter_bytes():
                        pass
                ended.append(index)  # the body ended whole; a cut stream raises instead

            async with anyio.create_task_group() as group:
                for index in range(10):
                    group.start_soon(listen, index)
                for event in opened:
                    await event.wait()
                # Bounded loosely: what is held is that nothing waits out the grace ("graceful shutdown
                # exceeded" below), not how fast a loaded machine tears a process down.
                with anyio.fail_after(10):
                    served.process.send_signal(signal.SIGTERM)
                    await served.process.wait()
    log = served.text
    assert served.process.returncode == 0, log
    assert sorted(ended) == list(range(10)), ended
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log, log
