"""compare_experiment_runs: the statistics against SciPy, the calibration of the verdict on simulated runs,
and the tool through a client in both protocol eras and over stdio."""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import anyio
import httpx2
import numpy as np
import pytest
from mcp import Client, StdioServerParameters
from scipy import stats

from retab_mcp.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import consensus_score, opaque_id
from retab_mcp.tools.server import build_server
from retab_mcp.views.paired import bootstrap_interval, paired_test, sign_flip_p_value

from .helpers import SIM_URL, TEST_KEY, data_of, size_of, text_of

pytestmark = pytest.mark.anyio

# The published interface of the new tool: argument names, and keys always present in its result.
ARGUMENTS = {"base_run_id", "candidate_run_id"}
KEYS = {
    "base_run_id",
    "candidate_run_id",
    "verdict",
    "paired_documents",
    "base_score",
    "candidate_score",
    "score_delta",
    "mean_delta",
    "ci_low",
    "ci_high",
    "p_value",
    "deltas",
    "same_configuration",
    "same_documents",
    "noise_sd",
    "only_in_base",
    "only_in_candidate",
    "regressed",
    "improved",
    "fields_moved",
    "rule",
    "method",
    "warnings",
    "hint",
}


def deltas(n: int, shift: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.gauss(shift, 0.04), 4) for _ in range(n)]


@pytest.mark.parametrize(("n", "shift"), [(12, 0.0), (12, 0.03), (50, 0.0), (50, 0.012)])
def test_the_interval_and_the_p_value_agree_with_scipy(n: int, shift: float) -> None:
    values = deltas(n, shift, seed=n * 100 + round(shift * 1000))
    low, high = bootstrap_interval(values)
    reference = stats.bootstrap(
        (np.array(values),), np.mean, method="percentile", n_resamples=100_000, rng=np.random.default_rng(0)
    ).confidence_interval
    assert abs(low - reference.low) < 0.005 and abs(high - reference.high) < 0.005
    exact = n <= 16  # SciPy's sign-flip test is exact when asked for every pattern
    permutation = stats.permutation_test(
        (np.array(values),),
        np.mean,
        permutation_type="samples",
        n_resamples=2**n if exact else 200_000,  # every pattern: SciPy then computes the exact distribution
        rng=np.random.default_rng(0),
    )
    assert abs(sign_flip_p_value(values) - permutation.pvalue) < (1e-9 if exact else 0.01)


def test_the_verdict_follows_the_stated_rule() -> None:
    assert paired_test(deltas(12, 0.05, seed=1)).verdict == "improved"
    assert paired_test(deltas(12, -0.05, seed=2)).verdict == "regressed"
    assert paired_test(deltas(12, 0.0, seed=3)).verdict == "no detectable change"
    assert paired_test([0.2, 0.3, 0.25, 0.1, 0.2]).verdict == "no detectable change"  # 5 documents: p >= 0.0625
    assert paired_test([]).verdict == "no detectable change"


@pytest.mark.slow
def test_over_400_pairs_of_same_configuration_runs_the_verdict_is_no_change_93_to_97_percent() -> None:
    sim = SimulatedRetab(clock=VirtualClock(1_000.0))
    experiment = sim.add_experiment("calibration", documents=12)
    runs = [sim.world.run(sim.add_consensus_run(experiment)) for _ in range(800)]
    documents = [d for d, _ in sim.world.experiments[-1].documents]
    quiet = 0
    for base, candidate in zip(runs[::2], runs[1::2], strict=True):
        assert base is not None and candidate is not None
        values = [consensus_score(candidate, d) - consensus_score(base, d) for d in documents]
        quiet += paired_test(values).verdict == "no detectable change"
    assert 0.93 <= quiet / 400 <= 0.97, quiet


@pytest.fixture
def world() -> tuple[SimulatedRetab, VirtualClock]:
    clock = VirtualClock(1_000.0)
    return SimulatedRetab(clock=clock), clock


async def compare(sim: SimulatedRetab, clock: VirtualClock, mode: str, base: str, candidate: str) -> Any:
    server = build_server(
        Settings(api_key=TEST_KEY, base_url=SIM_URL), transport=httpx2.ASGITransport(app=sim), clock=clock
    )
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        with anyio.fail_after(10):
            return await client.call_tool(
                "compare_experiment_runs", {"base_run_id": base, "candidate_run_id": candidate}
            )


async def test_a_real_improvement_is_detected_and_the_fields_that_moved_are_named(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("improve", documents=12)
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, everywhere=0.06, fields={"invoice.total": 0.1})
    candidate = sim.add_consensus_run(experiment)
    result = await compare(sim, clock, mode, base, candidate)
    data = data_of(result)
    assert set(data) == KEYS
    assert data["verdict"] == "improved" and data["paired_documents"] == 12
    assert data["ci_low"] > 0 and data["p_value"] < 0.05
    assert data["same_configuration"] is False and data["same_documents"] is True and data["noise_sd"] is None
    assert any(f["path"] == "invoice.total" for f in data["fields_moved"])
    assert text_of(result).startswith("Verdict: improved (n=12 paired documents).")
    assert size_of(result) <= 4_096


async def test_a_regression_is_detected(world: tuple[SimulatedRetab, VirtualClock], mode: str) -> None:
    sim, clock = world
    experiment = sim.add_experiment("regress", documents=20)
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, documents={i: -0.08 for i in range(12)})
    data = data_of(await compare(sim, clock, mode, base, sim.add_consensus_run(experiment)))
    assert data["verdict"] == "regressed" and data["ci_high"] < 0
    assert data["regressed"][0]["delta"] < -0.05
    assert "triage_experiment_run" in data["hint"]


async def test_two_runs_of_one_configuration_are_called_noise_with_its_level(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("noise", documents=12)
    first, second = sim.add_consensus_run(experiment), sim.add_consensus_run(experiment)
    result = await compare(sim, clock, mode, first, second)
    data = data_of(result)
    assert data["verdict"] == "no detectable change"
    assert data["same_configuration"] is True and data["same_documents"] is True
    assert 0.02 < data["noise_sd"] < 0.07  # the simulator's 0.03 per run, so about 0.042 for a delta
    assert "run-to-run noise" in text_of(result)


async def test_different_documents_and_an_unfinished_run_are_warned_of(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    base = sim.add_consensus_run(sim.add_experiment("twelve", documents=12))
    other = sim.add_experiment("eight", documents=8)
    unfinished = sim.world.run(sim.add_consensus_run(other, duration_s=60, finished=False))
    assert unfinished is not None
    clock.advance(30)  # half way
    data = data_of(await compare(sim, clock, mode, base, unfinished.id))
    assert data["paired_documents"] == 0 and data["verdict"] == "no detectable change"
    assert len(data["only_in_base"]) == 5 and data["only_in_candidate"]
    warnings = " ".join(data["warnings"])
    assert "documents differ" in warnings and "candidate run is running" in warnings


async def test_an_unknown_run_is_a_clear_error_that_names_it(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    latest = opaque_id("exprun", "latest")
    for base, candidate in ((latest, "exprun_nope"), ("exprun_nope", latest)):
        result = await compare(sim, clock, mode, base, candidate)
        assert result.is_error and "No experiment run 'exprun_nope' was found" in text_of(result)


async def test_the_tool_is_published_with_its_arguments(mcp_client: Client) -> None:
    tools = {tool.name: tool for tool in (await mcp_client.list_tools()).tools}
    tool = tools["compare_experiment_runs"]
    assert set(tool.input_schema["properties"]) == ARGUMENTS
    assert set(tool.input_schema["required"]) == ARGUMENTS
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert set((tool.output_schema or {}).get("properties", {})) >= KEYS


@pytest.mark.slow
async def test_compare_over_stdio() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "retab_mcp", "--demo"])
    latest, older = opaque_id("exprun", "latest"), opaque_id("exprun", "older")
    with anyio.fail_after(30):
        async with Client(params) as client:
            result = await client.call_tool(
                "compare_experiment_runs", {"base_run_id": older, "candidate_run_id": latest}
            )
    data = data_of(result)
    assert set(data) == KEYS and data["paired_documents"] > 0
    assert len(json.dumps(data)) + len(text_of(result)) <= 4_096 + 200
