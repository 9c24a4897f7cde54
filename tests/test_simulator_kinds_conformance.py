"""Every answer of the simulated API for workflow runs, steps, reviews, artifacts, evals, eval runs and eval
results validates against the published spec of those paths (tests/data/workflow-runs-evals-openapi.json),
one test per operation, in every state the seeded scenarios reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock

from .helpers import TEST_KEY

pytestmark = pytest.mark.anyio

SPEC_PATH = Path(__file__).parent / "data" / "workflow-runs-evals-openapi.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
SHARED_SPEC = Path(__file__).parents[2] / "shared" / "retab-api" / "workflow-runs-evals-openapi.json"
RUNS, STEPS, REVIEWS = "/v1/workflows/runs", "/v1/workflows/steps", "/v1/workflows/reviews"
EVALS, EVAL_RUNS, RESULTS = "/v1/workflows/evals", "/v1/workflows/evals/runs", "/v1/workflows/evals/results"


def validate(method: str, template: str, response: httpx2.Response) -> dict[str, Any]:
    """The response's body, after checking it against the spec's schema for its operation and status."""
    operation = SPEC["paths"][template][method.lower()]
    schema = operation["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
    body = response.json()
    jsonschema.Draft202012Validator({**schema, "components": SPEC["components"]}).validate(body)
    return body


@pytest.fixture
async def http(sim: SimulatedRetab) -> Any:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=sim),
        base_url="http://retab.test",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as c:
        yield c


def start_document(sim: SimulatedRetab) -> dict[str, Any]:
    block = sim.workflow_world.workflows[0].blocks[0].id
    return {block: {"filename": "scan.pdf", "url": "data:application/pdf;base64,JVBERi0xLjQK"}}


def test_the_vendored_spec_matches_the_shared_one_when_present() -> None:
    if not SHARED_SPEC.exists():
        pytest.skip("no shared/ checkout beside this repository")
    assert json.loads(SHARED_SPEC.read_text()) == SPEC


def test_the_spec_has_the_seventeen_operations_these_tests_cover() -> None:
    operations = {(m.upper(), p) for p, ops in SPEC["paths"].items() for m in ops}
    assert len(operations) == 17


# Workflow runs


async def test_workflow_runs_conform_in_every_lifecycle_state(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    seen: set[str] = set()
    for _ in range(6):
        for run_id in sim.workflow_run_ids.values():
            body = validate("GET", f"{RUNS}/{{run_id}}", await http.get(f"{RUNS}/{run_id}"))
            seen.add(body["lifecycle"]["status"])
        clock.advance(10.0)
    assert seen == {"pending", "running", "awaiting_review", "completed", "error", "cancelled"}


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"limit": "2"},
        {"status": "awaiting_review"},
        {"status": "failed"},
        {"exclude_status": "completed"},
        {"trigger_type": "email"},
        {"order": "asc", "limit": "3"},
        {"from_date": "2026-11-28", "to_date": "2026-11-28"},
        {"min_duration_ms": "1000", "max_duration_ms": "100000"},
        {"search": "run_"},
        {"metadata": '{"tenant": "acme"}'},
    ],
)
async def test_workflow_run_lists_conform(http: httpx2.AsyncClient, sim: SimulatedRetab, query: dict[str, str]) -> None:
    body = validate("GET", RUNS, await http.get(RUNS, params=query))
    assert body["data"], "each filter keeps some seeded run"
    if after := body["list_metadata"]["after"]:
        validate("GET", RUNS, await http.get(RUNS, params=query | {"after": after}))


async def test_creating_a_workflow_run_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    workflow_id = sim.workflow_ids["invoices"]
    created = await http.post(RUNS, json={"workflow_id": workflow_id, "documents": start_document(sim)})
    assert created.status_code == 202
    assert validate("POST", RUNS, created)["lifecycle"]["status"] == "pending"
    missing = await http.post(RUNS, json={"documents": start_document(sim)})
    assert missing.status_code == 422
    validate("POST", RUNS, missing)


async def test_cancelling_a_workflow_run_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    run_id = sim.workflow_run_ids["awaiting_review"]
    first = validate("POST", f"{RUNS}/{{run_id}}/cancel", await http.post(f"{RUNS}/{run_id}/cancel", json={}))
    again = validate("POST", f"{RUNS}/{{run_id}}/cancel", await http.post(f"{RUNS}/{run_id}/cancel"))
    assert first["run"]["lifecycle"]["status"] == again["run"]["lifecycle"]["status"] == "cancelled"
    assert (await http.post(f"{RUNS}/{sim.workflow_run_ids['completed']}/cancel")).status_code == 409


# Steps, reviews, artifacts


async def test_step_lists_conform_for_every_run(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    seen: set[str] = set()
    for _ in range(3):
        for run_id in sim.workflow_run_ids.values():
            body = validate("GET", STEPS, await http.get(STEPS, params={"run_id": run_id, "limit": "100"}))
            seen |= {step["lifecycle"]["status"] for step in body["data"]}
        clock.advance(15.0)
    assert seen == {"running", "awaiting_review", "completed", "error", "skipped", "cancelled"}
    filtered = await http.get(STEPS, params=[("block_type", "function"), ("status", "completed"), ("limit", "2")])
    body = validate("GET", STEPS, filtered)
    assert {s["block_type"] for s in body["data"]} == {"function"} and body["list_metadata"]["after"]


async def test_one_step_by_id_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    run_id = sim.workflow_run_ids["failed"]
    steps = (await http.get(STEPS, params={"run_id": run_id, "limit": "100"})).json()["data"]
    for step in steps:
        one = await http.get(f"{STEPS}/{step['step_id']}", params={"run_id": run_id})
        assert validate("GET", f"{STEPS}/{{step_id}}", one) == step


@pytest.mark.parametrize("decision_status", ["pending", "approved", "rejected", "decided", "all"])
async def test_review_lists_conform(http: httpx2.AsyncClient, decision_status: str) -> None:
    body = validate("GET", REVIEWS, await http.get(REVIEWS, params={"decision_status": decision_status}))
    assert body["data"]


async def test_one_review_by_id_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    for review_id in sim.review_ids.values():
        body = validate("GET", f"{REVIEWS}/{{review_id}}", await http.get(f"{REVIEWS}/{review_id}"))
        assert body["id"] == review_id


async def test_every_artifact_a_step_or_an_eval_result_names_conforms(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    named: list[str] = []
    for run_id in sim.workflow_run_ids.values():
        steps = (await http.get(STEPS, params={"run_id": run_id, "limit": "100"})).json()["data"]
        named += [s["artifact"]["id"] for s in steps if s["artifact"]]
    results = (await http.get(RESULTS, params={"run_id": sim.eval_run_ids["candidate"], "limit": "100"})).json()
    named += [r["artifact"]["id"] for r in results["data"] if r["artifact"]]
    operations: set[str] = set()
    for artifact_id in named:
        body = validate(
            "GET", "/v1/workflows/artifacts/{artifact_id}", await http.get(f"/v1/workflows/artifacts/{artifact_id}")
        )
        operations.add(body["operation"])
    assert operations == {"parse", "classification", "extraction", "function_invocation"}


# Evals, eval runs, eval results


@pytest.mark.parametrize("workflow", ["invoices", "support"])
async def test_eval_lists_conform(http: httpx2.AsyncClient, sim: SimulatedRetab, workflow: str) -> None:
    query = {"workflow_id": sim.workflow_ids[workflow], "limit": "5"}
    body = validate("GET", EVALS, await http.get(EVALS, params=query))
    validate("GET", EVALS, await http.get(EVALS, params=query | {"after": body["list_metadata"]["after"]}))


async def test_one_eval_by_id_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    for eval_id in sim.eval_ids.values():
        assert validate("GET", f"{EVALS}/{{eval_id}}", await http.get(f"{EVALS}/{eval_id}"))["id"] == eval_id


async def test_eval_runs_conform_in_every_lifecycle_state(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    seen: set[str] = set()
    for _ in range(4):
        for run_id in sim.eval_run_ids.values():
            body = validate("GET", f"{EVAL_RUNS}/{{run_id}}", await http.get(f"{EVAL_RUNS}/{run_id}"))
            seen.add(body["lifecycle"]["status"])
        clock.advance(1.0)
    assert seen == {"pending", "queued", "running", "completed", "error", "cancelled"}


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"limit": "2"},
        {"status": "completed"},
        {"exclude_status": "completed"},
        {"trigger_type": "schedule"},
        {"order": "asc"},
        {"from_date": "2026-11-27T00:00:00Z", "to_date": "2026-11-28T23:59:59Z"},
    ],
)
async def test_eval_run_lists_conform(http: httpx2.AsyncClient, sim: SimulatedRetab, query: dict[str, str]) -> None:
    body = validate("GET", EVAL_RUNS, await http.get(EVAL_RUNS, params=query))
    assert body["data"]
    total = sim.eval_world.suites[0].evals[1]
    for name, one in (("eval_id", total.id), ("target_block_id", total.block.id)):
        validate("GET", EVAL_RUNS, await http.get(EVAL_RUNS, params=query | {name: one}))


@pytest.mark.parametrize("scope", [None, "workflow", "block", "single"])
async def test_creating_an_eval_run_conforms_for_every_scope(
    http: httpx2.AsyncClient, sim: SimulatedRetab, scope: str | None
) -> None:
    total = sim.eval_world.suites[0].evals[1]
    scopes = {
        "workflow": {"type": "workflow"},
        "block": {"type": "block", "block_id": total.block.id},
        "single": {"type": "single", "eval_id": total.id},
    }
    request = {"workflow_id": sim.workflow_ids["invoices"]} | ({"scope": scopes[scope]} if scope else {})
    created = await http.post(EVAL_RUNS, json=request)
    assert created.status_code == 202
    body = validate("POST", EVAL_RUNS, created)
    assert body["lifecycle"]["status"] == "pending"
    assert body["total_evals"] == {"block": 11, "single": 1}.get(scope or "", 12)
    extra = await http.post(EVAL_RUNS, json=request | {"evals": "all"})
    assert extra.status_code == 422
    validate("POST", EVAL_RUNS, extra)


async def test_cancelling_an_eval_run_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    run_id = sim.eval_run_ids["running"]
    cancelled = validate("POST", f"{EVAL_RUNS}/{{run_id}}/cancel", await http.post(f"{EVAL_RUNS}/{run_id}/cancel"))
    assert cancelled["lifecycle"]["status"] == "cancelled"
    assert (await http.post(f"{EVAL_RUNS}/{run_id}/cancel")).status_code == 200
    assert (await http.post(f"{EVAL_RUNS}/{sim.eval_run_ids['base']}/cancel")).status_code == 404


async def test_eval_result_lists_conform_for_every_run(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    seen: set[str] = set()
    for _ in range(3):
        for run_id in sim.eval_run_ids.values():
            body = validate("GET", RESULTS, await http.get(RESULTS, params={"run_id": run_id, "limit": "100"}))
            seen |= {r["lifecycle"]["status"] for r in body["data"]}
        clock.advance(5.0)
    assert seen == {"pending", "queued", "running", "completed", "error", "cancelled"}
    first = validate("GET", RESULTS, await http.get(RESULTS, params={"run_id": sim.eval_run_ids["base"], "limit": "5"}))
    assert first["list_metadata"]["after"]


async def test_one_eval_result_by_id_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    rows = (await http.get(RESULTS, params={"run_id": sim.eval_run_ids["candidate"], "limit": "100"})).json()["data"]
    kinds: set[str] = set()
    for row in rows:
        one = await http.get(f"{RESULTS}/{row['id']}")
        assert validate("GET", f"{RESULTS}/{{result_id}}", one) == row
        kinds.add(row["assertion_result"]["condition_kind"])
    assert {"equals", "number_compare", "matches_regex", "llm_judged_as", "similarity_gte"} <= kinds


# Errors


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (RUNS, {"limit": "0"}),
        (RUNS, {"status": "done"}),
        (RUNS, {"metadata": "not json"}),
        (RUNS, {"after": "run_unknown"}),
        (STEPS, {"limit": "1001"}),
        (REVIEWS, {"decision_status": "maybe"}),
        (EVALS, {}),
        (EVAL_RUNS, {"from_date": "yesterday"}),
        (RESULTS, {}),
    ],
)
async def test_validation_errors_conform(http: httpx2.AsyncClient, path: str, query: dict[str, str]) -> None:
    response = await http.get(path, params=query)
    assert response.status_code == 422
    validate("GET", path, response)


async def test_not_found_bodies_are_the_ones_retab_sends(http: httpx2.AsyncClient) -> None:
    run = await http.get(f"{RUNS}/run_nope")
    eval_run = await http.get(f"{EVAL_RUNS}/wfevalrun_q1z2")
    assert (run.status_code, run.json()) == (404, {"detail": "Workflow run not found"})
    assert (eval_run.status_code, eval_run.json()) == (404, {"detail": "Workflow eval run not found: wfevalrun_q1z2"})
    for path in (
        f"{STEPS}/step_nope",
        f"{REVIEWS}/rev_nope",
        "/v1/workflows/artifacts/extr_nope",
        f"{EVALS}/x",
        f"{RESULTS}/x",
    ):
        missing = await http.get(path)
        assert missing.status_code == 404 and isinstance(missing.json()["detail"], str)
