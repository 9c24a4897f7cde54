"""Tasks across replicas behind nginx (tests/deployment.py: redis-server, `--stateless` replicas, nginx from
deploy/nginx.conf.template). With Redis, any replica answers for a task another holds, and a killed holder's
task is taken over; without Redis, nginx routes a 2026 host's tasks/* by its Mcp-Name header to the replica
that made the task. Requests are sent as hosts send them on each wire, one HTTP post each, round robin."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab

from .deployment import Deployment, deployment, missing_parts
from .helpers import TEST_KEY, LoopbackAPI

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TASKS = "io.modelcontextprotocol/tasks"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}},
}
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def the_parts_are_here() -> None:
    missing = missing_parts()
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


async def post(http: httpx2.AsyncClient, method: str, params: dict[str, Any], *, era: str = "2026") -> dict[str, Any]:
    """One request through nginx, with the headers its era's host sends (2026: Mcp-Method, and Mcp-Name: the
    tool, or the task id on tasks/*)."""
    request = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": dict(params)}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    if era == "2026":
        request["params"]["_meta"] = ENVELOPE
        name = params.get("name") if method == "tools/call" else params.get("taskId")
        headers.update({"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, "Mcp-Name": str(name)})
    answer = await http.post("/mcp", json=request, headers=headers)
    lines = [line[5:] for line in answer.text.splitlines() if line.startswith("data:")] or [answer.text]
    return next(m for m in map(json.loads, lines) if m.get("id") == request["id"])


async def with_deployment(tmp_path: Path, body: Any, env: dict[str, str] | None = None) -> None:
    sim = SimulatedRetab(clock=RealClock())
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        async with deployment(tmp_path, api.url, TEST_KEY, env=env) as deployed:
            await body(sim, deployed)
        await api.stop()
        group.cancel_scope.cancel()


async def until_ended(http: httpx2.AsyncClient, task_id: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    while True:
        answer = await post(http, "tasks/get", {"taskId": task_id})
        assert "result" in answer, answer
        seen.append(answer["result"])
        if answer["result"]["status"] != "working":
            return answer["result"]
        await anyio.sleep(0.5)  # a host's poll interval, shortened


async def test_any_replica_answers_for_a_task_another_holds_in_both_eras(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=8, documents=4)
        seen: list[dict[str, Any]] = []
        async with deployed.http(timeout=60) as http:
            created = await post(http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}})
            task_id = created["result"]["taskId"]
            old = await post(
                http,
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tasks": {}},
                    "clientInfo": {"name": "h", "version": "0"},
                },
                era="2025",
            )
            assert old["result"]["capabilities"]["tasks"]
            made = await post(
                http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}, "task": {}}, era="2025"
            )
            old_id = made["result"]["task"]["taskId"]
            with anyio.fail_after(40):
                final = await until_ended(http, task_id, seen)
                result = await post(http, "tasks/result", {"taskId": old_id}, era="2025")
        assert final["status"] == "completed" and final["result"]["structuredContent"]["finished"] is True
        assert len(seen) >= 3  # asked of every replica in turn, round robin: each knew the task
        assert result["result"]["structuredContent"]["status"] == "completed"
        assert "." not in task_id.split("-")[0][:10] or not task_id.startswith("replica-")  # no routing prefix

    await with_deployment(tmp_path, body)


async def test_a_task_whose_replica_is_killed_is_taken_over_and_ends_with_its_run(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=14, documents=7)
        from redis.asyncio import Redis

        redis: Any = Redis(unix_socket_path=str(deployed.directory / "redis.sock"), decode_responses=True)
        seen: list[dict[str, Any]] = []
        async with deployed.http(timeout=60) as http:
            created = await post(http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}})
            task_id = created["result"]["taskId"]
            holder = await redis.get(f"retab-mcp:tasklease:{task_id}")
            victim = next(r for r in deployed.replicas if f"replica-{r.index}" == holder)
            await anyio.sleep(2)
            deployed.kill(victim)
            with anyio.fail_after(60):
                final = await until_ended(http, task_id, seen)
            new_holder = await redis.get(f"retab-mcp:tasklease:{task_id}")
        await redis.aclose()
        assert final["status"] == "completed", final
        assert final["result"]["structuredContent"]["finished"] is True
        assert new_holder is None or new_holder != holder

    await with_deployment(tmp_path, body)


async def test_without_redis_nginx_routes_a_task_s_requests_by_mcp_name_to_the_replica_that_made_it(
    tmp_path: Path,
) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=6, documents=3)
        seen: list[dict[str, Any]] = []
        async with deployed.http(timeout=60) as http:
            made = [
                await post(http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}})
                for _ in range(3)
            ]
            task_ids = [answer["result"]["taskId"] for answer in made]
            with anyio.fail_after(40):
                finals = [await until_ended(http, task_id, seen) for task_id in task_ids]
        assert {task_id.split(".")[0] for task_id in task_ids} == {"replica-0", "replica-1", "replica-2"}
        assert all(final["status"] == "completed" for final in finals)
        assert all("result" in answer or answer.get("status") for answer in seen)

    await with_deployment(tmp_path, body, env={"RETAB_MCP_REDIS_URL": ""})
