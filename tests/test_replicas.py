"""Replicas behind nginx that share one poller per run through Redis (tests/deployment.py starts the real
redis-server, nginx and `--stateless` replicas): sharing, a lease holder that dies, and Redis that goes."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.tools.common import partition_name
from retab_mcp.watch.sharing import LEASE_MARGIN_S

from .deployment import PARTITION_SECRET, Arrivals, Deployment, deployment, polls_of, require_parts
from .helpers import TEST_KEY, LoopbackAPI

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(autouse=True)
def the_parts_are_here() -> None:
    require_parts()


async def with_deployment(
    tmp_path: Path,
    body: Callable[[SimulatedRetab, Deployment], Awaitable[None]],
    env: dict[str, str] | None = None,
) -> None:
    sim = SimulatedRetab(clock=RealClock())
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        async with deployment(tmp_path, api.url, TEST_KEY, env=env) as deployed:
            await body(sim, deployed)
        await api.stop()
        group.cancel_scope.cancel()


def direct_agent(port: int, http: httpx2.AsyncClient) -> Client:
    """An agent of one replica, past nginx."""
    return Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http))  # type: ignore[arg-type]


async def wait_until_finished(
    deployed: Deployment,
    run_id: str,
    timeout_s: float,
    log: list[dict[str, Any]],
    seen_progress: list[float] | None = None,
) -> None:
    """One agent: wait_for_run until the run ends, each call retried once on a connection error, as hosts
    do. Each attempt is logged with how long it took: one cut short by a dead replica too."""

    async def heard(progress: float, total: float | None, message: str | None) -> None:
        if seen_progress is not None:
            seen_progress.append(progress)

    async with deployed.http(timeout=timeout_s + 30) as http:
        finished = False
        while not finished:
            result: CallToolResult | None = None
            started = time.monotonic()
            for _ in range(2):
                started = time.monotonic()
                try:
                    async with deployed.agent(http) as agent:
                        started = time.monotonic()  # what is timed is the call, not the handshake
                        result = await agent.call_tool(
                            "wait_for_run", {"run_id": run_id, "timeout_s": timeout_s}, progress_callback=heard
                        )
                except Exception as error:  # a replica gone mid-call: the host tries once more
                    log.append({"took": time.monotonic() - started, "retried": type(error).__name__})
                    continue
                break
            assert result is not None, "the retry failed too"
            data = result.structured_content or {}
            log.append({"took": time.monotonic() - started, "error": result.is_error, "finished": data.get("finished")})
            finished = bool(data.get("finished")) or result.is_error


async def test_replicas_poll_each_run_about_as_often_as_one_replica_would(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        shared = sim.add_run(duration_s=8, documents=4)
        alone = sim.add_run(duration_s=8, documents=4)
        log: list[dict[str, Any]] = []
        progress: list[float] = []
        one = deployed.replicas[0]
        async with anyio.create_task_group() as agents:
            for _ in range(9):  # through nginx: spread over the three replicas
                agents.start_soon(wait_until_finished, deployed, shared, 20.0, log, progress)

            async def direct() -> None:  # the baseline: every session on one replica, nobody else waiting
                async with httpx2.AsyncClient(timeout=60) as http:
                    for _ in range(3):
                        async with direct_agent(one.port, http) as agent:
                            await agent.call_tool("wait_for_run", {"run_id": alone, "timeout_s": 20})

            for _ in range(3):
                agents.start_soon(direct)
        assert not any(entry.get("error") for entry in log)
        assert progress and max(progress) == 4  # progress streams on each call's own answer, stateless too
        shared_polls, alone_polls = len(polls_of(sim, shared)), len(polls_of(sim, alone))
        assert 0 < shared_polls <= 1.2 * alone_polls + 1, (shared_polls, alone_polls)
        texts = [await r.metrics() for r in deployed.replicas]
        saved = sum(r.counter(t, "retab_mcp_polls_saved_total") for r, t in zip(deployed.replicas, texts, strict=True))
        leases = sum(
            r.counter(t, "retab_mcp_lease_changes_total") for r, t in zip(deployed.replicas, texts, strict=True)
        )
        assert saved > 0 and leases >= 1

    await with_deployment(tmp_path, body)


async def test_a_lease_holder_that_dies_is_replaced_and_every_wait_still_returns(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=16, documents=8)
        log: list[dict[str, Any]] = []
        lease_key = f"retab-mcp:lease:{partition_name(PARTITION_SECRET.encode(), TEST_KEY)}:experiment:{run_id}"
        from redis.asyncio import Redis

        redis: Any = Redis(unix_socket_path=str(deployed.directory / "redis.sock"), decode_responses=True)
        killed_at: list[float] = []
        going = Arrivals(sim).polled(run_id, 3)
        async with anyio.create_task_group() as agents:
            for _ in range(6):
                agents.start_soon(wait_until_finished, deployed, run_id, 6.0, log)
            with anyio.fail_after(20):
                await going.wait()  # the run is being polled, by its lease holder
            holder = await redis.get(lease_key)
            victim = next(r for r in deployed.replicas if f"replica-{r.index}" == holder)
            killed_at.append(sim.clock.now())
            deployed.kill(victim)
        await redis.aclose()
        assert all(entry["took"] <= 6.0 + 2.0 for entry in log), log  # none hangs on the dead replica
        answered = [entry for entry in log if "retried" not in entry]
        assert not any(entry["error"] for entry in answered)
        assert sum(bool(entry["finished"]) for entry in answered) == 6  # every agent saw the run end
        polls = polls_of(sim, run_id)
        before = [t for t in polls if t < killed_at[0]]
        after = [t for t in polls if t >= killed_at[0]]
        widest = max(b - a for a, b in itertools.pairwise(before)) if len(before) > 1 else 2.0
        # Taken over about LEASE_MARGIN_S after the missed poll; 2 s more for Redis, the new holder's first
        # poll and a loaded machine. Without the takeover the next poll would wait for an agent's next call.
        assert after and after[0] - before[-1] <= widest + LEASE_MARGIN_S + 2.0, (before, after)

    await with_deployment(tmp_path, body)


async def test_without_redis_each_replica_polls_alone_and_agents_see_no_error(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_id = sim.add_run(duration_s=12, documents=6)
        log: list[dict[str, Any]] = []
        going = Arrivals(sim).polled(run_id, 2)
        async with anyio.create_task_group() as agents:
            for _ in range(6):
                agents.start_soon(wait_until_finished, deployed, run_id, 5.0, log)
            with anyio.fail_after(20):
                await going.wait()
            await deployed.stop_redis()
        assert not any(entry.get("error") for entry in log)
        assert not any("retried" in entry for entry in log)
        assert sum(bool(entry["finished"]) for entry in log) == 6
        said = [r.stderr.decode() for r in deployed.replicas]
        assert any("cannot be reached" in text for text in said)
        async with httpx2.AsyncClient(timeout=10) as http:
            ready = await http.get(f"http://127.0.0.1:{deployed.replicas[0].port}/readyz")
        assert ready.status_code == 503 and "redis" in ready.json()

    await with_deployment(tmp_path, body)


def posts(sim: SimulatedRetab) -> int:
    return sum(1 for r in sim.requests if r.method == "POST" and r.path.endswith("/experiments/runs"))


async def call_through_nginx(deployed: Deployment, tool: str, arguments: dict[str, Any], **http: Any) -> CallToolResult:
    async with deployed.http(timeout=60, **http) as client, deployed.agent(client) as agent:
        return await agent.call_tool(tool, arguments)


async def test_twenty_starts_of_one_experiment_across_three_replicas_make_one_run_and_all_name_it(
    tmp_path: Path,
) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        experiment = sim.add_experiment("crowd", documents=12)
        results: list[CallToolResult] = []

        async def start() -> None:
            results.append(await call_through_nginx(deployed, "start_experiment_run", {"experiment_id": experiment}))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as agents:
                for _ in range(20):  # round robin over the three replicas
                    agents.start_soon(start)
        data = [result.structured_content or {} for result in results]
        runs = [r.id for r in sim.world.runs if r.experiment.id == experiment]
        assert not any(result.is_error for result in results), [r.content for r in results if r.is_error]
        assert posts(sim) == 1 and len(runs) == 1
        assert {d["run_id"] for d in data} == set(runs)
        assert sorted(d["outcome"] for d in data) == ["already_running"] * 19 + ["started"]

    await with_deployment(tmp_path, body, env={"RETAB_MCP_ALLOW_WRITES": "1"})


async def test_with_redis_down_a_replica_refuses_to_start_rather_than_risk_a_second_run(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        experiment = sim.add_experiment("no-redis", documents=12)
        await deployed.stop_redis()
        with anyio.fail_after(30):
            result = await call_through_nginx(deployed, "start_experiment_run", {"experiment_id": experiment})
        assert result.is_error and "Redis" in str(result.content) and "Nothing was started" in str(result.content)
        assert posts(sim) == 0

    await with_deployment(tmp_path, body, env={"RETAB_MCP_ALLOW_WRITES": "1"})


async def test_a_state_forged_or_replayed_in_redis_is_never_shown_to_an_agent(tmp_path: Path) -> None:
    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        from redis.asyncio import Redis

        done = sim.add_run(duration_s=2, documents=2)
        going = sim.add_run(duration_s=600, documents=10)
        partition = partition_name(PARTITION_SECRET.encode(), TEST_KEY)
        redis: Any = Redis(unix_socket_path=str(deployed.directory / "redis.sock"), decode_responses=True)
        with anyio.fail_after(30):
            finished = await call_through_nginx(deployed, "wait_for_run", {"run_id": done, "timeout_s": 10})
            assert (finished.structured_content or {})["status"] == "completed"
            genuine = await redis.get(f"retab-mcp:state:{partition}:experiment:{done}")
            assert genuine, "the replicas shared the finished run's state"
            watching = await call_through_nginx(deployed, "wait_for_run", {"run_id": going, "timeout_s": 1})
            assert (watching.structured_content or {})["status"] == "running"
            completed = {"id": going, "lifecycle": {"status": "completed"}}
            forged_state = {"run": completed, "run_id": f"experiment:{going}", "read_wall_t": time.time() + 600}
            unsigned = json.dumps({**forged_state, "by": "x"})  # "read" later, and sealed by nobody
            for forged in (unsigned, genuine):  # made up; and a sealed state of another run, replayed
                shown: list[CallToolResult] = []
                polling = Arrivals(sim).polled(going, len(polls_of(sim, going)) + 2)

                async def waits(into: list[CallToolResult] = shown) -> None:
                    into.append(await call_through_nginx(deployed, "wait_for_run", {"run_id": going, "timeout_s": 4}))

                async with anyio.create_task_group() as agents:
                    for _ in range(3):  # round robin: every replica waits on it
                        agents.start_soon(waits)
                    await polling.wait()  # the replicas watch the run: now the forgery comes
                    await redis.set(f"retab-mcp:state:{partition}:experiment:{going}", forged)
                    await redis.publish(f"retab-mcp:run:{partition}:experiment:{going}", forged)
                assert [(r.structured_content or {}).get("status") for r in shown] == ["running"] * 3
                assert all((r.structured_content or {}).get("run_id") == going for r in shown)
        await redis.aclose()

    await with_deployment(tmp_path, body)


async def test_with_per_user_keys_every_replica_tells_a_tenant_another_tenant_s_run_is_not_found(
    tmp_path: Path,
) -> None:
    """Tenant B's waits on tenant A's run land on several replicas at once: the one that polls gets B's 404s,
    and the others, which do not poll, must answer B the same, not time out waiting for a state."""
    key_a, key_b = "sk_live_orgA_0123456789abcdefSECRET", "sk_live_orgB_9876543210fedcbaSECRET"

    async def body(sim: SimulatedRetab, deployed: Deployment) -> None:
        run_a = sim.add_run(duration_s=120, documents=5)
        sim.owners[run_a] = key_a
        answers: list[tuple[float, CallToolResult]] = []

        async def b_waits() -> None:
            started = time.monotonic()
            result = await call_through_nginx(
                deployed, "wait_for_run", {"run_id": run_a, "timeout_s": 15}, headers={"X-Retab-Api-Key": key_b}
            )
            answers.append((time.monotonic() - started, result))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as agents:
                for _ in range(6):  # two on each replica
                    agents.start_soon(b_waits)
        for took, result in answers:
            assert result.is_error and f"No experiment run '{run_a}' was found" in str(result.content), result.content
            assert took < 10, took  # told at once, not at the end of the wait

    await with_deployment(tmp_path, body, env={"RETAB_MCP_PER_USER_KEYS": "1", "RETAB_API_KEY": ""})
