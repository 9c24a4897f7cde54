"""Tasks of many callers over streamable HTTP, on one server: twenty sessions with a task each on one run cost
the polls of one waiter, and a session never sees another's task. The 2025 wire is spoken as a host that
declares tasks does, request by request (the SDK's own client has no tasks)."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import httpx2
import pytest
from benchmarks.support import answer_to

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback
from retab_mcp.tools.server import build_server
from retab_mcp.transports.http import HttpOptions, build_app

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HANDSHAKE = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tasks": {"list": {}, "cancel": {}}},
    "clientInfo": {"name": "host", "version": "0"},
}


class HostSession:
    """One 2025-era session of a host that takes tasks, over streamable HTTP."""

    _ids = itertools.count(1)

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}

    async def open(self) -> None:
        answer = await self.http.post(self.url, json=self._request("initialize", HANDSHAKE), headers=self.headers)
        self.headers["Mcp-Session-Id"] = answer.headers["mcp-session-id"]
        await self.http.post(
            self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.headers
        )

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}

    async def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request = self._request(method, params)
        answer = await self.http.post(self.url, json=request, headers=self.headers)
        return answer_to(request, answer.text)


async def test_twenty_sessions_with_a_task_each_on_one_run_cost_one_poll_loop_and_see_only_their_own() -> None:
    sim = SimulatedRetab()
    shared, alone = (
        sim.add_run(duration_s=4, queue_s=0.5, documents=4),
        sim.add_run(duration_s=4, queue_s=0.5, documents=4),
    )
    settings = Settings(api_key="sk_test_coalesce", base_url="http://retab.test")
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim))
    finals: list[dict[str, Any]] = []
    strangers: list[dict[str, Any]] = []
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            mcp_http = Loopback(build_app(server, HttpOptions(), settings).app, group, lifespan="on")
            mcp_http.start()
            async with httpx2.AsyncClient(timeout=30) as http:
                hosts = [HostSession(http, f"{mcp_http.url}/mcp") for _ in range(21)]
                for host in hosts:
                    await host.open()
                task_ids = [""] * len(hosts)

                async def create(i: int, run_id: str) -> None:  # all at once, as the waits start together
                    call = {"name": "wait_for_run", "arguments": {"run_id": run_id}, "task": {}}
                    task_ids[i] = (await hosts[i].ask("tools/call", call))["result"]["task"]["taskId"]

                async with anyio.create_task_group() as creating:
                    for i, run_id in enumerate([shared] * 20 + [alone]):
                        creating.start_soon(create, i, run_id)
                for host, other in zip(hosts, task_ids[1:] + task_ids[:1], strict=True):
                    strangers.append(await host.ask("tasks/get", {"taskId": other}))

                async def result(host: HostSession, task_id: str) -> None:
                    finals.append(await host.ask("tasks/result", {"taskId": task_id}))

                async with anyio.create_task_group() as waits:
                    for host, task_id in zip(hosts, task_ids, strict=True):
                        waits.start_soon(result, host, task_id)
            await mcp_http.stop()
    count = {run_id: sum(r.path.endswith(run_id) for r in sim.requests) for run_id in (shared, alone)}
    assert [final["result"]["structuredContent"]["status"] for final in finals] == ["completed"] * 21
    assert all(stranger["error"]["code"] == -32602 for stranger in strangers), strangers
    assert count[shared] <= 1.5 * count[alone] + 1, count  # one loop each (on a loaded machine, one poll more)
