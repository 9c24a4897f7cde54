"""compare_experiment_runs through a client, in both protocol eras and over stdio: verdicts, the reasons
there is none, the base picked for the agent, the tries against one base counted from Retab's runs, the
fields tested, the API calls it costs and the size of what it returns. The statistics themselves are in
test_verdicts.py; their calibration in test_calibration.py."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from retab_mcp.api.models import Run
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import opaque_id
from retab_mcp.tools.server import build_server
from retab_mcp.views.compare import BUDGET_BYTES, choose_base, count_candidates

from .helpers import SIM_URL, TEST_KEY, data_of, size_of, text_of
from .snapshot import assert_snapshot

pytestmark = pytest.mark.anyio

# The published interface: argument names, and keys always present in its result (null or not).
ARGUMENTS = {"base_run_id", "candidate_run_id"}
REQUIRED = {"candidate_run_id"}
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
ADDED = {
    "why_no_verdict",
    "score_vs_mean",
    "interval_level",
    "adjusted_p_value",
    "candidate_index",
    "min_detectable_shift",
    "reading",
    "documents_needed",
    "base_chosen",
    "fields_tested",
    "fields_changed",
}


@pytest.fixture
def world() -> tuple[SimulatedRetab, VirtualClock]:
    clock = VirtualClock(1_000.0)
    return SimulatedRetab(clock=clock), clock


async def compare(sim: SimulatedRetab, clock: VirtualClock, mode: str, base: str | None, candidate: str) -> Any:
    server = build_server(
        Settings(api_key=TEST_KEY, base_url=SIM_URL), transport=httpx2.ASGITransport(app=sim), clock=clock
    )
    arguments = {"candidate_run_id": candidate} | ({"base_run_id": base} if base is not None else {})
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        with anyio.fail_after(20):
            return await client.call_tool("compare_experiment_runs", arguments)


async def test_a_real_improvement_is_detected_and_the_field_that_changed_is_named(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("improve", documents=12)
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, everywhere=0.06, fields={"invoice.total": 0.1})
    candidate = sim.add_consensus_run(experiment)
    result = await compare(sim, clock, mode, base, candidate)
    data = data_of(result)
    assert set(data) == KEYS | ADDED
    assert data["verdict"] == "improved" and data["paired_documents"] == 12 and data["why_no_verdict"] is None
    assert data["ci_low"] > 0 and data["p_value"] < 0.05 and data["interval_level"] == 0.95
    assert data["candidate_index"] == 1 and data["adjusted_p_value"] == data["p_value"]
    assert data["same_configuration"] is False and data["same_documents"] is True and data["noise_sd"] is None
    assert data["fields_tested"] == 6
    changed = {f["path"]: f for f in data["fields_changed"]}
    assert changed["invoice.total"]["verdict"] == "improved" and changed["invoice.total"]["adjusted_p_value"] < 0.05
    assert text_of(result).startswith("Verdict: improved (n=12 paired documents).")
    assert size_of(result) <= BUDGET_BYTES


async def test_a_regression_is_detected(world: tuple[SimulatedRetab, VirtualClock], mode: str) -> None:
    sim, clock = world
    experiment = sim.add_experiment("regress", documents=20)
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, documents={i: -0.08 for i in range(12)})
    data = data_of(await compare(sim, clock, mode, base, sim.add_consensus_run(experiment)))
    assert data["verdict"] == "regressed" and data["ci_high"] < 0
    assert data["regressed"][0]["delta"] < -0.05
    assert "triage_experiment_run" in data["hint"]


async def test_two_runs_of_one_configuration_are_a_noise_measurement_with_its_level(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("noise", documents=12)
    first, second = sim.add_consensus_run(experiment), sim.add_consensus_run(experiment)
    result = await compare(sim, clock, mode, first, second)
    data = data_of(result)
    assert data["verdict"] == "no detectable change" and data["reading"] in ("no change", "too few documents to tell")
    assert data["same_configuration"] is True and data["same_documents"] is True
    assert 0.02 < data["noise_sd"] < 0.07  # the simulator's 0.03 per run, so about 0.042 for a delta
    assert any("measures run-to-run noise" in w for w in data["warnings"])
    assert data["min_detectable_shift"] > data["ci_high"] - data["mean_delta"]


async def test_an_unfinished_candidate_gets_no_verdict_and_the_call_to_wait(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("twelve", documents=12)
    base = sim.add_consensus_run(experiment)
    unfinished = sim.add_consensus_run(experiment, duration_s=60, finished=False)
    clock.advance(30)  # half way: 5 documents scored
    result = await compare(sim, clock, mode, base, unfinished)
    data = data_of(result)
    assert data["verdict"] == "no verdict" and data["ci_low"] is None and data["p_value"] is None
    assert f"wait_for_run(run_id='{unfinished}')" in data["why_no_verdict"]
    assert text_of(result).startswith("Verdict: no verdict (n=")


async def test_runs_of_different_experiments_get_no_verdict_and_say_why(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    base = sim.add_consensus_run(sim.add_experiment("twelve", documents=12))
    other = sim.add_consensus_run(sim.add_experiment("eight", documents=8))
    data = data_of(await compare(sim, clock, mode, base, other))
    assert data["verdict"] == "no verdict" and data["paired_documents"] == 0
    assert "different experiments" in data["why_no_verdict"]


async def test_a_run_compared_with_itself_gets_no_verdict(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    run = sim.add_consensus_run(sim.add_experiment("self", documents=12))
    data = data_of(await compare(sim, clock, mode, run, run))
    assert data["verdict"] == "no verdict" and "same run" in data["why_no_verdict"]


async def test_stale_metrics_hold_the_verdict_until_a_refresh(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("stale", documents=12)
    base = sim.add_consensus_run(experiment)
    candidate = sim.add_consensus_run(experiment)
    run = sim.world.run(candidate)
    assert run is not None
    run.metrics_stale = True
    data = data_of(await compare(sim, clock, mode, base, candidate))
    assert data["verdict"] == "no verdict"
    assert "stale" in data["why_no_verdict"] and "metrics refresh" in data["why_no_verdict"]


async def test_too_few_shared_documents_get_no_verdict_with_the_minimum(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("few", documents=5)
    base, candidate = sim.add_consensus_run(experiment), sim.add_consensus_run(experiment)
    data = data_of(await compare(sim, clock, mode, base, candidate))
    assert data["verdict"] == "no verdict" and "at least 6" in data["why_no_verdict"]


async def test_the_base_is_picked_when_only_the_candidate_is_given(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("auto", documents=12)
    sim.add_consensus_run(experiment)
    previous = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, everywhere=0.05)
    candidate = sim.add_consensus_run(experiment)
    data = data_of(await compare(sim, clock, mode, None, candidate))
    assert data["base_run_id"] == previous and data["candidate_run_id"] == candidate
    assert "latest completed run" in data["base_chosen"] and data["candidate_index"] == 1


async def test_without_an_earlier_run_the_base_must_be_given(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    only = sim.add_consensus_run(sim.add_experiment("alone", documents=12))
    result = await compare(sim, clock, mode, None, only)
    assert result.is_error and "Pass base_run_id" in text_of(result)


async def test_the_third_candidate_against_one_base_is_counted_and_adjusted(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("loop", documents=12)
    base = sim.add_consensus_run(experiment)
    for shift in (0.01, -0.01):  # two tries that went nowhere, then a third that helps
        sim.edit_block(experiment, everywhere=shift)
        sim.add_consensus_run(experiment)
    failed = sim.world.run(sim.add_consensus_run(experiment))
    assert failed is not None
    failed.outcome = "error"  # a run that failed is no try: it is not counted
    sim.edit_block(experiment, everywhere=0.08)
    third = sim.add_consensus_run(experiment)
    result = await compare(sim, clock, mode, base, third)
    data = data_of(result)
    assert data["candidate_index"] == 3
    assert data["adjusted_p_value"] == pytest.approx(min(1.0, data["p_value"] * 6), rel=0.01)
    assert data["interval_level"] == pytest.approx(1 - 0.05 / 6)
    assert "3rd candidate against this base" in text_of(result)


def listed(*runs: tuple[str, str, str]) -> list[Run]:
    """Runs as the API lists them, newest first: (id, status, documents fingerprint)."""
    return [
        Run.model_validate({"id": i, "lifecycle": {"status": s}, "documents_fingerprint": f, "experiment_id": "exp"})
        for i, s, f in runs
    ]


def test_the_tries_are_counted_from_the_candidate_back_to_the_base() -> None:
    runs = listed(
        ("newer", "completed", "d"),  # after the candidate: not counted
        ("cand", "completed", "d"),
        ("failed", "error", "d"),  # no try: it ended in error
        ("other_docs", "completed", "e"),  # other documents: not a try against this base
        ("going", "running", "d"),
        ("try", "completed", "d"),
        ("base", "completed", "d"),
        ("older", "completed", "d"),
    )
    by_id = {run.id: run for run in runs}
    assert count_candidates(runs, by_id["base"], by_id["cand"]) == 3
    assert count_candidates(runs, by_id["cand"], by_id["base"]) == 1  # the base is the newer one
    assert count_candidates(runs[:5], by_id["base"], by_id["cand"]) == 2  # base not listed: a lower bound
    assert choose_base(runs, by_id["cand"]) == by_id["try"]
    assert choose_base(runs, by_id["older"]) is None


async def test_a_base_newer_than_the_candidate_is_warned_of(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("swapped", documents=12)
    older = sim.add_consensus_run(experiment)
    clock.advance(60)
    newer = sim.add_consensus_run(experiment)
    data = data_of(await compare(sim, clock, mode, newer, older))
    assert any("base run is newer" in w for w in data["warnings"])


async def test_failed_documents_are_left_out_once_not_called_different_documents(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    data = data_of(await compare(sim, clock, mode, sim.run_ids["older"], sim.run_ids["latest"]))
    assert data["paired_documents"] == 9 and data["same_documents"] is True
    assert "documents_fingerprint" not in " ".join(data["warnings"])
    left_out = [w for w in data["warnings"] if "left out" in w]
    assert len(left_out) == 1 and "candidate 3" in left_out[0]
    assert "9 documents both scored, 3 left out" in data["score_vs_mean"]


async def test_the_field_reads_cost_at_most_one_call_per_paired_document_and_run(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("cost", documents=30)
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, everywhere=0.03)
    candidate = sim.add_consensus_run(experiment)
    data = data_of(await compare(sim, clock, mode, base, candidate))
    reads = [r for r in sim.requests if r.path.endswith("/metrics") and r.query.get("view") == "by_document"]
    per_run = {run: sum(r.query["run_id"] == run for r in reads) for run in (base, candidate)}
    assert per_run == {base: 30, candidate: 30} and data["fields_tested"] == 6
    assert all(r.query.get("prior_run_id") == base for r in reads if r.query["run_id"] == candidate)


async def test_a_hundred_documents_with_long_names_fit_in_4_kb(
    world: tuple[SimulatedRetab, VirtualClock], mode: str
) -> None:
    sim, clock = world
    experiment = sim.add_experiment("wide", documents=100)
    spec = sim.world.experiment(experiment)
    assert spec is not None
    spec.documents = [(d, "a-very-long-file-name-" * 8 + f"{i}.pdf") for i, (d, _) in enumerate(spec.documents)]
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, documents={i: (-0.1 if i % 2 else 0.12) for i in range(100)})
    result = await compare(sim, clock, mode, base, sim.add_consensus_run(experiment))
    assert data_of(result)["fields_tested"] == 6
    assert size_of(result) <= BUDGET_BYTES


async def test_the_demo_comparison_reads_as_expected(world: tuple[SimulatedRetab, VirtualClock], mode: str) -> None:
    sim, clock = world
    result = await compare(sim, clock, mode, sim.run_ids["older"], sim.run_ids["latest"])
    assert_snapshot("compare_older_latest.txt", text_of(result) + "\n")
    no_verdict = await compare(sim, clock, mode, sim.run_ids["latest"], sim.run_ids["stale"])
    assert_snapshot("compare_no_verdict.txt", text_of(no_verdict) + "\n")


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
    assert set(tool.input_schema["required"]) == REQUIRED
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert set((tool.output_schema or {}).get("properties", {})) >= KEYS | ADDED


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
    assert set(data) >= KEYS and data["paired_documents"] > 0
    assert len(json.dumps(data)) + len(text_of(result)) <= 4_096 + 200
