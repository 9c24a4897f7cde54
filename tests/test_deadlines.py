"""Every call ends within the host's limit: one deadline bounds all attempts and sleeps of a tool call, a
resource read and a completion; a wait is bounded by its own timeout_s.

Three APIs on real loopback sockets, each slower than the deadline in its own way: one that answers
after 30 s, one that accepts connections and never answers, one that trickles its answer a byte at a
time (each byte well inside the read timeout, so only an overall bound ends it). Every handler of the
server is called at once against each; each must end, with a clear error, within its deadline + 1 s, and
the server must serve the next call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from mcp import Client, MCPError
from mcp.types import ResourceTemplateReference

from retab_mcp.base.clock import RealClock
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback
from retab_mcp.tools.server import build_server

from .helpers import TEST_KEY, text_of

pytestmark = pytest.mark.anyio

DEADLINE_S = 1.5
RUN_ID = "exprun_NzgyL-WnaCEXXx5ET7SNt"


def settings_for(url: str) -> Settings:
    # Timeouts per read shorter than the deadline, so that retries happen and the deadline must bound them.
    return Settings(
        api_key=TEST_KEY,
        base_url=url,
        connect_timeout_s=0.5,
        read_timeout_s=0.6,
        call_deadline_s=DEADLINE_S,
        max_retries=3,
        allow_writes=True,
    )


@asynccontextmanager
async def raw_api(handle: Callable[[anyio.abc.SocketStream], Awaitable[None]]) -> AsyncIterator[str]:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as group:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        group.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{port}"
        group.cancel_scope.cancel()


async def never_answers(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await anyio.sleep_forever()


async def trickles(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await stream.receive()
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n")
        try:
            for _ in range(600):  # 60 s at most, then the connection closes
                await stream.send(b" ")
                await anyio.sleep(0.1)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
            return  # the server gave up on this answer at its deadline, as it must, and closed the connection


@asynccontextmanager
async def slow_api() -> AsyncIterator[str]:
    async with anyio.create_task_group() as group:
        loopback = Loopback(SimulatedRetab(clock=RealClock()), group)
        loopback.start()
        loopback.app.inject("slow", delay_s=30, times=10_000)
        yield loopback.url
        await loopback.stop()


APIS = {
    "answers after 30 s": slow_api,
    "never answers": lambda: raw_api(never_answers),
    "trickles bytes": lambda: raw_api(trickles),
}


async def every_handler(client: Client) -> dict[str, Callable[[], Awaitable[Any]]]:
    def tool(name: str, **arguments: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: client.call_tool(name, arguments)

    async def resource() -> Any:
        return await client.read_resource(f"retab://experiment-runs/{RUN_ID}")

    async def completion() -> Any:
        reference = ResourceTemplateReference(type="ref/resource", uri="retab://experiment-runs/{run_id}")
        return await client.complete(reference, {"name": "run_id", "value": "exprun_"})

    return {
        "get_experiment_run": tool("get_experiment_run", run_id=RUN_ID),
        "list_experiment_runs": tool("list_experiment_runs"),
        "list_experiment_run_results": tool("list_experiment_run_results", run_id=RUN_ID),
        "get_experiment_run_metrics": tool("get_experiment_run_metrics", run_id=RUN_ID),
        "triage_experiment_run": tool("triage_experiment_run", run_id=RUN_ID),
        "cancel_experiment_run": tool("cancel_experiment_run", run_id=RUN_ID),
        "wait_for_run": tool("wait_for_run", run_id=RUN_ID, timeout_s=DEADLINE_S),
        "wait_for_runs": tool("wait_for_runs", run_ids=[RUN_ID], timeout_s=DEADLINE_S),
        "resource": resource,
        "completion": completion,
    }


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.slow
async def test_every_call_ends_within_its_deadline_and_the_next_is_served(api: str, mode: str) -> None:
    outcomes: dict[str, Any] = {}
    async with APIS[api]() as url, Client(build_server(settings_for(url)), mode=mode) as client:  # type: ignore[arg-type]
        handlers = await every_handler(client)

        async def one(name: str) -> None:
            with anyio.fail_after(DEADLINE_S + 1):
                try:
                    outcomes[name] = await handlers[name]()
                except MCPError as error:
                    outcomes[name] = error

        async with anyio.create_task_group() as group:
            for name in handlers:
                group.start_soon(one, name)
        with anyio.fail_after(5):
            served = await client.call_tool("get_experiment_run", {"run_id": "not an id"})
            assert served.is_error and "not a valid run id" in text_of(served)

    for name in ("get_experiment_run", "list_experiment_runs", "triage_experiment_run"):
        text = text_of(outcomes[name])
        assert outcomes[name].is_error and "deadline" in text and "call again" in text.lower(), (name, text)
    # The others end sooner, each with its own clear error: a POST is sent once (its read timeout ends it),
    # a wait ends at its timeout_s with nothing read, and a wait on several says so in the run's row.
    for name in ("list_experiment_run_results", "get_experiment_run_metrics", "cancel_experiment_run", "wait_for_run"):
        assert outcomes[name].is_error, (name, text_of(outcomes[name]))
    row = (outcomes["wait_for_runs"].structured_content or {})["runs"][0]
    assert row["status"] == "unreadable" and row["read_error"]
    assert isinstance(outcomes["resource"], MCPError) and "deadline" in str(outcomes["resource"])
    assert outcomes["completion"].completion.values == []


@pytest.mark.slow
async def test_a_slow_api_that_recovers_is_served_at_once(mode: str) -> None:
    async with anyio.create_task_group() as group:
        loopback = Loopback(SimulatedRetab(clock=RealClock()), group)
        loopback.start()
        loopback.app.inject("slow", delay_s=30, times=10_000)
        async with Client(build_server(settings_for(loopback.url)), mode=mode) as client:  # type: ignore[arg-type]
            with anyio.fail_after(DEADLINE_S + 1):
                slow = await client.call_tool("get_experiment_run", {"run_id": RUN_ID})
            loopback.app.faults.clear()
            with anyio.fail_after(DEADLINE_S + 1):
                fine = await client.call_tool("get_experiment_run", {"run_id": RUN_ID})
            assert slow.is_error and not fine.is_error and (fine.structured_content or {})["status"] == "completed"
        await loopback.stop()
