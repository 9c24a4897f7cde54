"""Tasks across replicas behind nginx (tests/deployment.py: redis-server, `--stateless` replicas, nginx from
deploy/nginx.conf.template). With Redis, any replica answers for a task another holds, and a killed holder's
task is taken over; without Redis, nginx routes a 2026 host's tasks/* by its Mcp-Name header to the replica
that made the task. Requests are sent as hosts send them on each wire, one HTTP post each, round robin."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
from benchmarks.support import answer_to

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab

from .deployment import Arrivals, Deployment, deployment, polls_of, require_parts
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
    require_parts()


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
    return answer_to(request, answer.text)


async def with_deployment(tmp_path: Path, body: Any, env: dict[str, str] | None = None, replicas: int = 3) -> None:
    sim = SimulatedRetab(clock=RealClock())
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        async with deployment(tmp_path, api.url, TEST_KEY, replicas, env=env) as deployed:
            await body(sim, deployed)
        await api.stop()
        group.cancel_scope.cancel()


async def until_ended(http: httpx2.AsyncClient, task_id: str, ended: anyio.Event) -> dict[str, Any]:
    """The task's final state: asked once the API has told a poller the run ended, then again until the
    replica holding the task has recorded it (moments)."""
    await ended.wait()
    while True:
        answer = await post(http, "tasks/get", {"taskId": task_id})
        assert "result" in answer, answer
        if answer["result"]["status"] != "working":
            return answer["result"]
        await anyio.lowlevel.checkpoint()


async def test_any_replica_answers_for_a_task_another_holds_in_both_eras(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=8, documents=4)
        arrivals = Arrivals(sim)
        ended = arrivals.ended(run_id)
        async with deployed.http(timeout=60) as http:
            created = await post(http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}})
            task_id = created["result"]["taskId"]
            # Asked of each replica in turn (nginx round robin): each knows the task one of them holds.
            going = [await post(http, "tasks/get", {"taskId": task_id}) for _ in deployed.replicas]
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
                final = await until_ended(http, task_id, ended)
                result = await post(http, "tasks/result", {"taskId": old_id}, era="2025")
        assert [answer["result"]["status"] for answer in going] == ["working"] * len(deployed.replicas), going
        assert final["status"] == "completed" and final["result"]["structuredContent"]["finished"] is True
        assert result["result"]["structuredContent"]["status"] == "completed"
        assert not task_id.startswith("replica-")  # with Redis, no routing prefix: any replica answers

    await with_deployment(tmp_path, body)


async def test_twenty_hosts_with_a_task_each_on_one_run_across_replicas_share_one_poll_loop(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        shared = sim.add_run(duration_s=8, documents=4)
        alone = sim.add_run(duration_s=8, documents=4)
        arrivals = Arrivals(sim)
        ended = {run_id: arrivals.ended(run_id) for run_id in (shared, alone)}
        finals: dict[str, dict[str, Any]] = {}

        async def host(run_id: str) -> None:
            async with deployed.http(timeout=60) as http:
                created = await post(http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}})
                task_id = created["result"]["taskId"]
                finals[task_id] = await until_ended(http, task_id, ended[run_id])

        with anyio.fail_after(60):
            async with anyio.create_task_group() as hosts:
                for run_id in [shared] * 20 + [alone]:
                    hosts.start_soon(host, run_id)
        assert len(finals) == 21  # a task of its own for each host
        assert all(f["status"] == "completed" and f["result"]["structuredContent"]["finished"] for f in finals.values())
        shared_polls, alone_polls = len(polls_of(sim, shared)), len(polls_of(sim, alone))
        assert 0 < shared_polls <= 1.2 * alone_polls + 1, (shared_polls, alone_polls)

    await with_deployment(tmp_path, body)


async def test_a_task_whose_replica_is_killed_is_taken_over_and_ends_with_its_run(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=14, documents=7)
        arrivals = Arrivals(sim)
        first_poll, ended = arrivals.polled(run_id), arrivals.ended(run_id)
        from redis.asyncio import Redis

        redis: Any = Redis(unix_socket_path=str(deployed.directory / "redis.sock"), decode_responses=True)
        await redis.config_set("notify-keyspace-events", "Ex")  # tell the test when the dead holder's lease lapses
        lapses = redis.pubsub()
        await lapses.subscribe("__keyevent@0__:expired")
        async with deployed.http(timeout=60) as http:
            created = await post(http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}})
            task_id = created["result"]["taskId"]
            lease = f"retab-mcp:tasklease:{task_id}"
            with anyio.fail_after(60):
                await first_poll.wait()  # the holder is waiting on the run
                holder = await redis.get(lease)
                victim = next(r for r in deployed.replicas if f"replica-{r.index}" == holder)
                deployed.kill(victim)
                async for message in lapses.listen():
                    if message["type"] == "message" and message["data"] == lease:
                        break
                asked = await post(http, "tasks/get", {"taskId": task_id})  # the replica asked takes it over
                final = await until_ended(http, task_id, ended)
            new_holder = await redis.get(lease)
        await lapses.aclose()
        await redis.aclose()
        assert asked["result"]["status"] == "working", asked
        assert final["status"] == "completed", final
        assert final["result"]["structuredContent"]["finished"] is True
        assert new_holder is None or new_holder != holder

    await with_deployment(tmp_path, body)


async def test_without_redis_nginx_routes_a_task_s_requests_by_mcp_name_to_the_replica_that_made_it(
    tmp_path: Path,
) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=6, documents=3)
        ended = Arrivals(sim).ended(run_id)
        async with deployed.http(timeout=60) as http:
            made = [
                await post(http, "tools/call", {"name": "wait_for_run", "arguments": {"run_id": run_id}})
                for _ in range(3)
            ]
            task_ids = [answer["result"]["taskId"] for answer in made]
            with anyio.fail_after(40):
                finals = [await until_ended(http, task_id, ended) for task_id in task_ids]
        assert {task_id.split(".")[0] for task_id in task_ids} == {"replica-0", "replica-1", "replica-2"}
        assert all(final["status"] == "completed" for final in finals)

    await with_deployment(tmp_path, body, env={"RETAB_MCP_REDIS_URL": ""})


async def test_twenty_calls_at_once_from_one_caller_get_no_more_tasks_than_its_bound_with_redis(
    tmp_path: Path,
) -> None:
    """With Redis a task is stored before it is counted as added; the bound must hold for calls that arrive
    together all the same: three tasks, and the bounded call for the seventeen others (2026: its way past it)."""

    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=60, documents=4)
        answers: list[dict[str, Any]] = []

        async def host() -> None:
            async with deployed.http(timeout=60) as http:
                call = {"name": "wait_for_run", "arguments": {"run_id": run_id, "timeout_s": 1}}
                answers.append(await post(http, "tools/call", call))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as hosts:
                for _ in range(20):
                    hosts.start_soon(host)
        kinds = sorted(answer["result"]["resultType"] for answer in answers)
        assert kinds == ["complete"] * 17 + ["task"] * 3, kinds

    await with_deployment(tmp_path, body, env={"RETAB_MCP_MAX_TASKS_PER_CALLER": "3"}, replicas=1)
