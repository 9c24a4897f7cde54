"""The seeded experiment data does not contradict itself, and `python -m retab_mcp.simulator` serves the
world the demo walks through."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime

import anyio
import httpx2
import pytest

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import opaque_id, result_body, run_body

from .processes import read_until

pytestmark = pytest.mark.anyio


def test_the_failed_run_s_trace_names_the_document_it_stopped_on_and_a_pass_it_has(sim: SimulatedRetab) -> None:
    run = sim.world.run(sim.run_ids["failed"])
    assert run is not None
    now = sim.clock.now()
    status, completed = run.state_at(now)
    stopped_on = [result_body(sim.world, run, i, status, completed) for i in range(run.total)]
    failing = [r for r in stopped_on if r["lifecycle"].get("message") == run.error_message]
    filename = failing[0]["handle_inputs"]["document"]["document"]["filename"]
    found = re.search(r"\(document (\S+), consensus pass (\d) of (\d)\)$", run.stack_trace or "")
    assert found is not None and len(failing) == 1
    assert found.group(1) == filename == run_body(sim.world, run, now)["lifecycle"]["details"]["context"]["document"]
    assert int(found.group(2)) <= int(found.group(3)) == run.experiment.n_consensus


def test_the_ten_minute_run_s_pace_so_far_foretells_its_end(sim: SimulatedRetab) -> None:
    run = sim.world.run(sim.run_ids["long"])
    assert run is not None
    body = run_body(sim.world, run, sim.clock.now())
    started = datetime.fromisoformat(body["timing"]["started_at"])
    running_s = (sim.clock.wall_at(sim.clock.now()) - started).total_seconds()
    done, total = body["completed_document_count"], body["total_document_count"]
    eta_s = (total - done) * running_s / done  # as a client estimates it, from the throughput so far
    assert run.duration_s == 600 and running_s == 60
    assert eta_s == pytest.approx(run.duration_s - running_s)


def test_the_demo_world_s_seeded_loop_is_not_among_the_added_runs() -> None:
    demo = SimulatedRetab(clock=VirtualClock(start=1_000.0), demo=True)
    assert demo.stats()["added_runs"] == [] and opaque_id("exp", "invoices-tuned") in {
        e.id for e in demo.world.experiments
    }


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "served"), [((), 200), (("--plain",), 404)])
async def test_the_simulator_on_a_port_serves_the_demo_world_unless_asked_for_the_plain_one(
    flags: tuple[str, ...], served: int
) -> None:
    command = [sys.executable, "-m", "retab_mcp.simulator", "--port", "0", *flags]
    loop_experiment = opaque_id("exp", "invoices-tuned")
    with anyio.fail_after(30):
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
            ready = await read_until(process.stderr, b"\n")
            port = int(re.search(rb"http://127.0.0.1:(\d+)", ready).group(1))  # type: ignore[union-attr]
            async with httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k"}
            ) as http:
                experiment = await http.get(f"/v1/workflows/experiments/{loop_experiment}")
                workflow_runs = await http.get("/v1/workflows/runs")
            process.terminate()
            await process.wait()
    assert experiment.status_code == served and len(workflow_runs.json()["data"]) == 6
