"""The triage tools through the MCP client in both protocol eras: listing runs and results, metrics,
triage, waiting on several runs, cancelling, and the run resource and triage prompt."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextResourceContents

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import TOTAL_NOT_A_NUMBER

from .helpers import READ_TOOLS, TEST_KEY, size_of, text_of

pytestmark = pytest.mark.anyio

# Byte budgets (text plus compact structuredContent), at default arguments and in the worst case.
BUDGET = {
    "list_experiment_runs": 2_800,  # 10 rows (the default)
    "list_experiment_run_results": 3_000,  # 20 rows (the default)
    "results_page": 8_000,  # any page of results, whatever the limit and the data
    "get_experiment_run_metrics": 2_000,  # any view, any data
    "triage_experiment_run": 4_096,  # any run, any data
}


def batch_budget(runs: int) -> int:
    return 200 + 320 * runs  # each row carries every published run key, null or not


def long_named_run(sim: SimulatedRetab, documents: int = 50) -> str:
    """A finished run whose every document has a 300-character filename and a 3 KB error."""
    errors = {i: (f"{'x' * 3000} failure {i}", "E" * 300) for i in range(documents)}
    run_id = sim.add_run(documents=documents, duration_s=10, queue_s=1, document_errors=errors)
    run = sim.world.run(run_id)
    assert run is not None
    run.experiment.documents = [
        (d, "long-name-" * 30 + f"{i}.pdf") for i, (d, _) in enumerate(run.experiment.documents)
    ]
    sim.clock.advance(20)  # type: ignore[attr-defined]
    return run_id


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    with anyio.fail_after(10):
        return await client.call_tool(tool, arguments)


def data_of(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    return result.structured_content or {}


# list_experiment_runs


async def test_runs_are_listed_newest_first_in_compact_rows(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await call(mcp_client, "list_experiment_runs")
    rows = data_of(result)["runs"]
    assert rows[0]["run_id"] == sim.run_ids["young"]
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    latest = next(r for r in rows if r["run_id"] == sim.run_ids["latest"])
    assert latest == {
        "run_id": sim.run_ids["latest"],
        "status": "completed",
        "score": 0.8734,
        "completed_documents": 12,
        "total_documents": 12,
        "error_count": 3,
        "created_at": latest["created_at"],
    }
    assert f"- {sim.run_ids['latest']} · completed · score 0.87 · 12/12 docs · 3 err" in text_of(result)


async def test_a_default_page_of_ten_runs_fits_its_budget(mcp_client: Client, sim: SimulatedRetab) -> None:
    for _ in range(5):
        sim.add_run()
    result = await call(mcp_client, "list_experiment_runs")
    assert len(data_of(result)["runs"]) == 10 and data_of(result)["next_cursor"]
    assert size_of(result) <= BUDGET["list_experiment_runs"]


async def test_runs_are_filtered_by_status_and_experiment(mcp_client: Client, sim: SimulatedRetab) -> None:
    completed = data_of(await call(mcp_client, "list_experiment_runs", status="completed"))["runs"]
    assert {r["run_id"] for r in completed} == {sim.run_ids[k] for k in ("older", "latest", "stale")}
    experiment = sim.world.run(sim.run_ids["latest"]).experiment.id  # type: ignore[union-attr]
    rows = data_of(await call(mcp_client, "list_experiment_runs", experiment_id=experiment))["runs"]
    assert {r["run_id"] for r in rows} == {sim.run_ids[k] for k in ("older", "latest", "young")}


async def test_the_cursor_pages_through_every_run_once(mcp_client: Client, sim: SimulatedRetab) -> None:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = data_of(
            await call(mcp_client, "list_experiment_runs", limit=2, **({"cursor": cursor} if cursor else {}))
        )
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert sorted(seen) == sorted(sim.run_ids.values())


async def test_a_bad_cursor_is_refused_with_what_to_do(mcp_client: Client, sim: SimulatedRetab) -> None:
    malformed = await call(mcp_client, "list_experiment_runs", cursor="not a cursor!")
    assert malformed.is_error and "cursor" in text_of(malformed) and sim.requests == []
    stale = await call(mcp_client, "list_experiment_runs", cursor="exprun_gone")
    said = text_of(stale)  # in the tool's own word, cursor, not the API's `after`
    assert stale.is_error and "cursor 'exprun_gone' is stale" in said and "after" not in said


async def test_a_status_outside_the_spec_is_refused(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await call(mcp_client, "list_experiment_runs", status="finished")
    assert result.is_error and "completed" in text_of(result) and sim.requests == []


# list_experiment_run_results


async def test_results_show_each_document_with_its_file_status_and_duration(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    result = await call(mcp_client, "list_experiment_run_results", run_id=sim.run_ids["latest"])
    rows = data_of(result)["results"]
    assert [r["filename"] for r in rows] == [f"inv_{i:04d}.pdf" for i in range(1, 13)]
    assert all(r["duration_s"] > 0 for r in rows)
    failed = [r for r in rows if r["status"] == "error"]
    assert [r["filename"] for r in failed] == ["inv_0004.pdf", "inv_0008.pdf", "inv_0011.pdf"]
    assert failed[0]["error"] == TOTAL_NOT_A_NUMBER
    assert "inv_0004.pdf" in text_of(result) and TOTAL_NOT_A_NUMBER in text_of(result)
    assert size_of(result) <= BUDGET["list_experiment_run_results"]


async def test_only_failed_documents_page_by_page(mcp_client: Client, sim: SimulatedRetab) -> None:
    names: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        arguments: dict[str, Any] = {"run_id": sim.run_ids["latest"], "status": "error", "limit": 1}
        page = data_of(
            await call(mcp_client, "list_experiment_run_results", **arguments, **({"cursor": cursor} if cursor else {}))
        )
        names += [r["filename"] for r in page["results"]]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert names == ["inv_0004.pdf", "inv_0008.pdf", "inv_0011.pdf"]


async def test_results_of_a_run_with_no_failure_say_so(mcp_client: Client, sim: SimulatedRetab) -> None:
    data = data_of(await call(mcp_client, "list_experiment_run_results", run_id=sim.run_ids["older"], status="error"))
    assert data["results"] == [] and "No document has status 'error'" in data["hint"]


async def test_a_page_of_results_stays_within_its_budget_and_the_cursor_loses_no_row(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    run_id = long_named_run(sim)
    first = await call(mcp_client, "list_experiment_run_results", run_id=run_id, limit=50)
    assert size_of(first) <= BUDGET["results_page"] and len(data_of(first)["results"]) < 50
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(20):
        more = {"cursor": cursor} if cursor else {}
        page = data_of(await call(mcp_client, "list_experiment_run_results", run_id=run_id, limit=50, **more))
        seen += page["results"]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    run = sim.world.run(run_id)
    assert run is not None
    assert [r["document_id"] for r in seen] == [d for d, _ in run.experiment.documents]
    assert all(len(r["filename"]) <= 60 and len(r["error"]) <= 120 for r in seen)


async def test_metrics_stay_within_budget_on_long_names(mcp_client: Client, sim: SimulatedRetab) -> None:
    run_id = sim.add_run(documents=90, duration_s=10, queue_s=1)
    run = sim.world.run(run_id)
    assert run is not None
    run.experiment.documents = [
        (d, "long-name-" * 30 + f"{i}.pdf") for i, (d, _) in enumerate(run.experiment.documents)
    ]
    sim.clock.advance(20)  # type: ignore[attr-defined]
    result = await call(mcp_client, "get_experiment_run_metrics", run_id=run_id)
    assert data_of(result)["item_count"] == 90 and size_of(result) <= BUDGET["get_experiment_run_metrics"]


async def test_a_forged_results_cursor_sends_nothing(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await call(mcp_client, "list_experiment_run_results", run_id=sim.run_ids["latest"], cursor="../x.1")
    assert result.is_error and "cursor" in text_of(result) and sim.requests == []


# get_experiment_run_metrics


async def test_summary_metrics_show_the_score_against_the_prior_run_and_the_lowest_documents(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    result = await call(mcp_client, "get_experiment_run_metrics", run_id=sim.run_ids["latest"])
    data = data_of(result)
    assert (data["score"], data["prior_score"], data["delta"]) == (0.8734, 0.91, -0.0366)
    assert data["prior_run_id"] == sim.run_ids["older"]
    assert (data["scored_documents"], data["total_documents"], data["item_count"]) == (9, 12, 9)
    scores = [item["score"] for item in data["lowest"]]
    assert len(scores) == 5 and scores == sorted(scores)
    assert all(item["name"].endswith(".pdf") and "delta" in item for item in data["lowest"])
    assert "vs prior 0.910" in text_of(result) and "-0.037" in text_of(result)
    assert size_of(result) <= BUDGET["get_experiment_run_metrics"]


@pytest.mark.parametrize(
    ("view", "extra", "subject"),
    [
        ("by_document", "document_id", "inv_0001.pdf"),
        ("by_target", "target_path", "invoice.total"),
        ("votes", "target_path", "invoice.total"),
    ],
)
async def test_every_view_lists_its_lowest_items(
    mcp_client: Client, sim: SimulatedRetab, view: str, extra: str, subject: str
) -> None:
    run = sim.world.run(sim.run_ids["latest"])
    assert run is not None
    value = run.experiment.documents[0][0] if extra == "document_id" else "invoice.total"
    result = await call(mcp_client, "get_experiment_run_metrics", run_id=run.id, view=view, **{extra: value})
    data = data_of(result)
    assert data["kind"] == view and subject in data["subject"] and data["lowest"]
    assert size_of(result) <= BUDGET["get_experiment_run_metrics"]


@pytest.mark.parametrize(
    ("role", "kind", "words"), [("stale", "stale_metrics", "validity_changed"), ("young", "no_metrics", "No metrics")]
)
@pytest.mark.slow
async def test_stale_or_missing_metrics_are_a_warning_not_an_error(
    mcp_client: Client, sim: SimulatedRetab, role: str, kind: str, words: str
) -> None:
    result = await call(mcp_client, "get_experiment_run_metrics", run_id=sim.run_ids[role])
    data = data_of(result)
    assert data["kind"] == kind and words in data["warning"] and data["lowest"] == []
    assert f"Warning: {data['warning']}" in text_of(result)


async def test_an_unknown_document_is_named_in_the_error(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await call(
        mcp_client, "get_experiment_run_metrics", run_id=sim.run_ids["latest"], view="by_document", document_id="doc_x"
    )
    assert result.is_error and "'doc_x'" in text_of(result) and "Document not found" in text_of(result)


# triage_experiment_run


async def test_triage_explains_a_score_drop_with_failures_worst_documents_and_fields(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    result = await call(mcp_client, "triage_experiment_run", run_id=sim.run_ids["latest"])
    data = data_of(result)
    assert (data["score"], data["prior_score"], data["delta"]) == (0.8734, 0.91, -0.0366)
    assert data["prior_run_id"] == sim.run_ids["older"] and data["failed_documents"] == 3
    assert [(g["count"], g["code"]) for g in data["failures"]] == [(2, "SCHEMA_VALIDATION_ERROR"), (1, "MODEL_TIMEOUT")]
    assert data["failures"][0]["documents"] == ["inv_0004.pdf", "inv_0008.pdf"]
    assert len(data["worst_documents"]) == 3 and len(data["worst_fields"]) == 3
    assert data["worst_documents"][0]["score"] <= data["worst_documents"][1]["score"]
    assert data["run"]["status"] == "completed" and "metrics_warning" not in data
    verdict = data["verdict"]
    assert "-0.037" in verdict and "3 of 12 documents failed" in verdict and "2x invoice.total" in verdict
    assert any("status='error'" in c for c in data["next_calls"])
    assert any(f"triage_experiment_run(run_id='{sim.run_ids['older']}')" == c for c in data["next_calls"])
    assert text_of(result).startswith("Verdict: Completed")
    assert size_of(result) <= BUDGET["triage_experiment_run"]


async def test_triage_of_a_failed_run_names_the_cause_within_budget(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await call(mcp_client, "triage_experiment_run", run_id=sim.run_ids["failed"])
    data = data_of(result)
    assert data["cause"].startswith("retab.errors.SchemaValidationError: invoice.total")
    assert data["verdict"].startswith("Failed in block 'Extract invoice' after 18/40 docs")
    assert data["failed_documents"] == 3 and "Stack trace, last 4 of" in text_of(result)
    assert size_of(result) <= BUDGET["triage_experiment_run"]


async def test_triage_of_a_stale_run_carries_the_staleness(mcp_client: Client, sim: SimulatedRetab) -> None:
    data = data_of(await call(mcp_client, "triage_experiment_run", run_id=sim.run_ids["stale"]))
    assert "validity_changed" in data["metrics_warning"] and data["worst_documents"] == []


async def test_triage_of_an_unfinished_run_is_a_report_so_far(mcp_client: Client, sim: SimulatedRetab) -> None:
    data = data_of(await call(mcp_client, "triage_experiment_run", run_id=sim.run_ids["long"]))
    assert "Not finished" in data["verdict"] and data["next_calls"][0].startswith("wait_for_run(")


async def test_triage_keeps_what_it_has_when_metrics_cannot_be_read(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.inject(status=500, times=100, path_contains="/metrics")
    result = await call(mcp_client, "triage_experiment_run", run_id=sim.run_ids["latest"])
    data = data_of(result)
    assert data["failed_documents"] == 3 and data["worst_documents"] == []
    assert any(w.startswith("metrics not read") for w in data["warnings"])


async def test_triage_of_an_unknown_run_is_an_error(mcp_client: Client) -> None:
    result = await call(mcp_client, "triage_experiment_run", run_id="exprun_nope")
    assert result.is_error and "'exprun_nope'" in text_of(result)


async def test_triage_stays_within_4_kb_on_the_worst_input(mcp_client: Client, sim: SimulatedRetab) -> None:
    """Long messages, long filenames, many distinct failures, a long trace: the budget still holds."""
    run_id = sim.add_worst_case_run(documents=40, parent_run_id=sim.run_ids["latest"])
    sim.clock.advance(60)  # type: ignore[attr-defined]
    result = await call(mcp_client, "triage_experiment_run", run_id=run_id)
    assert data_of(result)["failed_documents"] == 18 + 1  # the even documents before 90 %, and the last
    assert size_of(result) <= BUDGET["triage_experiment_run"]


# wait_for_runs


@pytest.mark.eras
async def test_waiting_on_several_runs_until_all_finish_sums_progress(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    short = sim.add_run(duration_s=10, documents=4)
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with anyio.fail_after(10):
        result = await mcp_client.call_tool(
            "wait_for_runs",
            {"run_ids": [sim.run_ids["young"], short, sim.run_ids["latest"]], "timeout_s": 50},
            progress_callback=on_progress,
        )
    data = data_of(result)
    assert (data["done"], data["timed_out"], data["finished_runs"], data["total_runs"]) == (True, False, 3, 3)
    assert [r["status"] for r in data["runs"]] == ["completed"] * 3
    assert seen == sorted(set(seen)) and seen[-1] == 12 + 4 + 12  # summed, strictly increasing
    assert clock.now() - 1_000 <= 44
    assert size_of(result) <= batch_budget(3)


async def test_twenty_runs_fit_the_batch_budget(mcp_client: Client, sim: SimulatedRetab) -> None:
    run_ids = [long_named_run(sim, documents=3) for _ in range(19)]
    failing = sim.add_run(duration_s=2, queue_s=1, outcome="error")
    sim.world.runs[-1].error_message = "m" * 10_000
    sim.clock.advance(10)  # type: ignore[attr-defined]
    result = await call(mcp_client, "wait_for_runs", run_ids=[*run_ids, failing], timeout_s=1)
    assert data_of(result)["finished_runs"] == 20 and size_of(result) <= batch_budget(20)


async def test_mode_any_returns_when_the_first_run_finishes(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    short = sim.add_run(duration_s=8, documents=4)
    data = data_of(await call(mcp_client, "wait_for_runs", run_ids=[sim.run_ids["long"], short], mode="any"))
    assert data["done"] is True and data["finished_runs"] == 1
    assert [r["finished"] for r in data["runs"]] == [False, True]
    assert clock.now() - 1_000 <= 10 + 2


async def test_an_unknown_run_gets_its_reason_and_the_others_are_still_waited_on(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    short = sim.add_run(duration_s=5, documents=2)
    data = data_of(await call(mcp_client, "wait_for_runs", run_ids=["exprun_nope", short]))
    nope, ok = data["runs"]
    assert nope["status"] == "not_found" and "No experiment run 'exprun_nope'" in nope["read_error"]
    assert nope["error"] is None and nope["completed_documents"] is None
    assert ok["status"] == "completed" and data["done"] is True
    assert "drop them" in data["hint"] and "exprun_nope" in data["hint"]


async def test_a_timeout_returns_each_runs_state(mcp_client: Client, sim: SimulatedRetab) -> None:
    data = data_of(await call(mcp_client, "wait_for_runs", run_ids=[sim.run_ids["long"]], timeout_s=3))
    assert data["done"] is False and data["timed_out"] is True and data["runs"][0]["status"] == "running"
    assert "again" in data["hint"]


async def test_a_malformed_id_is_rejected_in_its_row_and_sends_nothing(mcp_client: Client, sim: SimulatedRetab) -> None:
    result = await call(mcp_client, "wait_for_runs", run_ids=[sim.run_ids["latest"], "bad id"])
    latest, bad = data_of(result)["runs"]
    assert not result.is_error and latest["status"] == "completed"
    assert bad["status"] == "invalid_id" and "'bad id' is not a valid run id" in bad["read_error"]
    assert data_of(result)["done"] is True and all("bad" not in r.path for r in sim.requests)


async def test_mode_any_does_not_keep_waiting_on_runs_that_do_not_exist(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    data = data_of(await call(mcp_client, "wait_for_runs", run_ids=["exprun_nope", "bad id"], mode="any"))
    assert [r["status"] for r in data["runs"]] == ["not_found", "invalid_id"]
    assert data["done"] is True and data["timed_out"] is False and "keep waiting" not in data["hint"]


async def test_mode_any_names_only_the_runs_worth_waiting_on_again(mcp_client: Client, sim: SimulatedRetab) -> None:
    long = sim.run_ids["long"]
    data = data_of(await call(mcp_client, "wait_for_runs", run_ids=["exprun_nope", long], mode="any", timeout_s=8))
    assert data["done"] is False and f"run_ids=['{long}']" in data["hint"] and "drop them): exprun_nope" in data["hint"]
    again = data_of(await call(mcp_client, "wait_for_runs", run_ids=[long], timeout_s=1))
    assert "again with the same run_ids and mode='all'" in again["hint"]


async def test_batch_size_is_checked_before_any_request(mcp_client: Client, sim: SimulatedRetab) -> None:
    too_many = await call(mcp_client, "wait_for_runs", run_ids=[f"exprun_{i}" for i in range(21)])
    empty = await call(mcp_client, "wait_for_runs", run_ids=[])
    assert too_many.is_error and "20" in text_of(too_many)
    assert empty.is_error
    assert sim.requests == []


async def test_a_rejected_key_ends_the_whole_batch(mcp_client: Client, sim: SimulatedRetab) -> None:
    sim.accepted_keys = {"sk_test_other"}
    result = await call(mcp_client, "wait_for_runs", run_ids=[sim.run_ids["long"], sim.run_ids["young"]])
    assert result.is_error and "RETAB_API_KEY" in text_of(result) and TEST_KEY not in text_of(result)


# cancel_experiment_run


async def test_cancel_is_not_offered_unless_the_operator_allows_writes(mcp_client: Client) -> None:
    tools = {t.name for t in (await mcp_client.list_tools()).tools}
    assert tools == READ_TOOLS and "cancel_experiment_run" not in tools


async def test_cancel_stops_a_running_run_and_is_annotated_destructive(writer: Client, sim: SimulatedRetab) -> None:
    tool = next(t for t in (await writer.list_tools()).tools if t.name == "cancel_experiment_run")
    assert tool.annotations is not None and tool.annotations.destructive_hint and not tool.annotations.read_only_hint
    data = data_of(await call(writer, "cancel_experiment_run", run_id=sim.run_ids["long"]))
    assert data["status"] == "cancelled" and data["cancel_sent"] is True
    assert [r.method for r in sim.requests].count("POST") == 1


async def test_cancelling_a_finished_run_changes_nothing_and_says_so(writer: Client, sim: SimulatedRetab) -> None:
    data = data_of(await call(writer, "cancel_experiment_run", run_id=sim.run_ids["latest"]))
    assert data["status"] == "completed" and data["cancel_sent"] is False and "Nothing to cancel" in data["hint"]


async def test_cancelling_an_unknown_run_is_an_error(writer: Client) -> None:
    result = await call(writer, "cancel_experiment_run", run_id="exprun_nope")
    assert result.is_error and "'exprun_nope'" in text_of(result)


# The run resource and the triage prompt


async def test_a_run_is_readable_as_a_resource(mcp_client: Client, sim: SimulatedRetab) -> None:
    templates = (await mcp_client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["retab://experiment-runs/{run_id}"]
    read = await mcp_client.read_resource(f"retab://experiment-runs/{sim.run_ids['latest']}")
    content = read.contents[0]
    assert isinstance(content, TextResourceContents)
    assert content.text.startswith(f"{sim.run_ids['latest']} · completed")


async def test_reading_an_unknown_run_resource_is_an_error_with_the_fix(mcp_client: Client) -> None:
    with pytest.raises(Exception, match="exprun_nope"):
        await mcp_client.read_resource("retab://experiment-runs/exprun_nope")


async def test_the_triage_prompt_walks_through_the_tools(mcp_client: Client) -> None:
    prompts = (await mcp_client.list_prompts()).prompts
    assert [p.name for p in prompts] == ["triage-experiment-run", "iterate-on-experiment", "iterate-on-block"]
    prompt = await mcp_client.get_prompt("triage-experiment-run", {"run_id": "exprun_2"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    for tool in ("get_experiment_run", "wait_for_run", "triage_experiment_run", "list_experiment_run_results"):
        assert f'{tool}(run_id="exprun_2"' in text


async def test_the_iterate_prompt_walks_the_loop_and_starts_only_when_asked_or_stale(mcp_client: Client) -> None:
    prompt = await mcp_client.get_prompt("iterate-on-experiment", {"experiment_id": "exp_abc"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    for call in ('get_experiment(experiment_id="exp_abc")', 'start_experiment_run(experiment_id="exp_abc")'):
        assert call in text
    for tool in ("wait_for_run", "compare_experiment_runs", "triage_experiment_run"):
        assert tool in text
    assert "only if the user asked" in text and "stale" in text and "run-to-run noise" in text
    with pytest.raises(Exception, match="experiment id"):
        await mcp_client.get_prompt("iterate-on-experiment", {"experiment_id": "exp abc"})


async def test_the_block_prompt_gates_on_evals_before_it_measures_agreement(writer: Client) -> None:
    arguments = {"workflow_id": "wf_1", "block_id": "block_a"}
    text = (await writer.get_prompt("iterate-on-block", arguments)).messages[0].content.text  # type: ignore[union-attr]
    order = ["list_runs(", "start_eval_run(", "wait_for_run(", "compare_eval_runs(", "list_experiments("]
    order += ["start_experiment_run(", "compare_experiment_runs("]
    assert [text.index(call) for call in order] == sorted(text.index(call) for call in order)
    assert 'start_eval_run(workflow_id="wf_1", block_id="block_a")' in text and "stop" in text
    known = (await writer.get_prompt("iterate-on-block", arguments | {"experiment_id": "exp_9"})).messages[0]
    assert 'get_experiment(experiment_id="exp_9")' in known.content.text  # type: ignore[union-attr]
    with pytest.raises(Exception, match="block id"):
        await writer.get_prompt("iterate-on-block", {"workflow_id": "wf_1", "block_id": "block a"})


async def test_every_call_a_prompt_names_is_a_listed_tool_with_its_arguments(writer: Client) -> None:
    """A prompt that names a tool or an argument the server does not have sends the model astray."""
    schemas = {tool.name: set(tool.input_schema.get("properties", {})) for tool in (await writer.list_tools()).tools}
    arguments = {"run_id": "exprun_2", "experiment_id": "exp_1", "workflow_id": "wf_1", "block_id": "block_a"}
    named = 0
    for prompt in (await writer.list_prompts()).prompts:
        given = {a.name: arguments[a.name] for a in prompt.arguments or [] if a.required}
        text = (await writer.get_prompt(prompt.name, given)).messages[0].content.text  # type: ignore[union-attr]
        for call in re.finditer(r"\b([a-z_]+)\(([^()]*)\)", text):
            name, args = call.groups()
            if name not in schemas and "_" not in name:
                continue  # a word in brackets, not a call
            assert name in schemas, (prompt.name, name)
            used = set(re.findall(r"(\w+)=", args))
            assert used <= schemas[name], (prompt.name, name, used - schemas[name])
            named += 1
    assert named >= 15
