"""Every answer of the simulated API validates against the OpenAPI subset of the real one."""

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

SPEC_PATH = Path(__file__).parent / "data" / "experiments-openapi.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
SHARED_SPEC = Path(__file__).parents[2] / "shared" / "retab-api" / "experiments-openapi.json"


def response_schema(method: str, template: str, status: int) -> dict[str, Any]:
    operation = SPEC["paths"][template][method.lower()]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": SPEC["components"]}


def validate(method: str, template: str, response: httpx2.Response) -> None:
    schema = response_schema(method, template, response.status_code)
    jsonschema.Draft202012Validator(schema).validate(response.json())


@pytest.fixture
async def http(sim: SimulatedRetab) -> Any:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=sim),
        base_url="http://retab.test",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as c:
        yield c


def test_the_vendored_spec_matches_the_shared_one_when_present() -> None:
    if not SHARED_SPEC.exists():
        pytest.skip("no shared/ checkout beside this repository")
    assert json.loads(SHARED_SPEC.read_text()) == SPEC


async def test_runs_conform_in_every_lifecycle_state(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    seen: set[str] = set()
    for _ in range(8):
        for run_id in sim.run_ids.values():
            response = await http.get(f"/v1/workflows/experiments/runs/{run_id}")
            assert response.status_code == 200
            validate("GET", "/v1/workflows/experiments/runs/{run_id}", response)
            seen.add(response.json()["lifecycle"]["status"])
        clock.advance(1.0)
    fresh = sim.add_run(queue_s=10)
    for _ in range(2):
        response = await http.get(f"/v1/workflows/experiments/runs/{fresh}")
        validate("GET", "/v1/workflows/experiments/runs/{run_id}", response)
        seen.add(response.json()["lifecycle"]["status"])
        clock.advance(5.0)
    assert seen == {"pending", "queued", "running", "completed", "error", "cancelled"}


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"limit": "2"},
        {"status": "running"},
        {"exclude_status": "completed"},
        {"order": "asc", "limit": "3"},
        {"trigger_type": "api"},
    ],
)
async def test_run_lists_conform(http: httpx2.AsyncClient, query: dict[str, str]) -> None:
    response = await http.get("/v1/workflows/experiments/runs", params=query)
    validate("GET", "/v1/workflows/experiments/runs", response)
    after = response.json()["list_metadata"]["after"]
    if after:
        response = await http.get("/v1/workflows/experiments/runs", params=query | {"after": after})
        validate("GET", "/v1/workflows/experiments/runs", response)


async def test_results_conform(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    for role in ("latest", "failed", "cancelled", "young"):
        response = await http.get("/v1/workflows/experiments/results", params={"run_id": sim.run_ids[role]})
        validate("GET", "/v1/workflows/experiments/results", response)


@pytest.mark.parametrize("view", ["summary", "by_document", "by_target", "votes"])
@pytest.mark.parametrize("role", ["latest", "stale", "young"])
async def test_metrics_conform(http: httpx2.AsyncClient, sim: SimulatedRetab, view: str, role: str) -> None:
    response = await http.get("/v1/workflows/experiments/metrics", params={"run_id": sim.run_ids[role], "view": view})
    validate("GET", "/v1/workflows/experiments/metrics", response)


async def test_experiments_conform(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    run = (await http.get(f"/v1/workflows/experiments/runs/{sim.run_ids['latest']}")).json()
    listing = await http.get("/v1/workflows/experiments", params={"workflow_id": run["workflow_id"]})
    validate("GET", "/v1/workflows/experiments", listing)
    assert len(listing.json()["data"]) == 2
    one = await http.get(f"/v1/workflows/experiments/{run['experiment_id']}")
    validate("GET", "/v1/workflows/experiments/{experiment_id}", one)


async def test_create_and_cancel_conform(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    experiment_id = sim.world.experiments[0].id
    created = await http.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id})
    assert created.status_code == 202
    validate("POST", "/v1/workflows/experiments/runs", created)
    cancelled = await http.post(f"/v1/workflows/experiments/runs/{created.json()['id']}/cancel")
    validate("POST", "/v1/workflows/experiments/runs/{run_id}/cancel", cancelled)
    assert cancelled.json()["lifecycle"]["status"] == "cancelled"
    again = await http.post(f"/v1/workflows/experiments/runs/{created.json()['id']}/cancel")
    assert again.status_code == 200
    finished = await http.post(f"/v1/workflows/experiments/runs/{sim.run_ids['latest']}/cancel")
    assert finished.status_code == 404


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/workflows/experiments/runs", {"limit": "0"}),
        ("/v1/workflows/experiments/runs", {"status": "done"}),
        ("/v1/workflows/experiments/runs", {"after": "exprun_unknown"}),
        ("/v1/workflows/experiments/results", {}),
        ("/v1/workflows/experiments/metrics", {"run_id": "x", "view": "everything"}),
    ],
)
async def test_validation_errors_conform(http: httpx2.AsyncClient, path: str, query: dict[str, str]) -> None:
    response = await http.get(path, params=query)
    assert response.status_code == 422
    jsonschema.Draft202012Validator(
        {**SPEC["components"]["schemas"]["HTTPValidationError"], "components": SPEC["components"]}
    ).validate(response.json())


async def test_every_answer_has_a_request_id(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    ok = await http.get(f"/v1/workflows/experiments/runs/{sim.run_ids['latest']}")
    missing = await http.get("/v1/workflows/experiments/runs/exprun_nope")
    unauthenticated = await http.get("/v1/workflows/experiments/runs", headers={"Authorization": ""})
    assert [r.status_code for r in (ok, missing, unauthenticated)] == [200, 404, 401]
    ids = {r.headers["x-request-id"] for r in (ok, missing, unauthenticated)}
    assert len(ids) == 3


async def test_experiment_create_update_delete_conform(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    workflow_id = sim.world.experiments[0].workflow_id
    created = await http.post(
        "/v1/workflows/experiments", json={"workflow_id": workflow_id, "name": "new", "n_consensus": 3}
    )
    assert created.status_code == 201
    validate("POST", "/v1/workflows/experiments", created)
    experiment_id = created.json()["id"]
    updated = await http.patch(f"/v1/workflows/experiments/{experiment_id}", json={"n_consensus": 7})
    validate("PATCH", "/v1/workflows/experiments/{experiment_id}", updated)
    assert updated.json()["n_consensus"] == 7
    deleted = await http.delete(f"/v1/workflows/experiments/{experiment_id}")
    assert deleted.status_code == 204
    assert (await http.get(f"/v1/workflows/experiments/{experiment_id}")).status_code == 404
    bad = await http.post("/v1/workflows/experiments", json={"name": "no workflow"})
    assert bad.status_code == 422
    validate("POST", "/v1/workflows/experiments", bad)


async def test_a_run_started_after_a_block_edit_follows_the_new_configuration(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    experiment_id = sim.add_experiment("edited", documents=12)
    first = (await http.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id})).json()
    sim.edit_block(experiment_id, everywhere=0.05)
    second = await http.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id})
    validate("POST", "/v1/workflows/experiments/runs", second)
    assert first["block_execution_fingerprint"] != second.json()["block_execution_fingerprint"]
    assert first["documents_fingerprint"] == second.json()["documents_fingerprint"]
    stale = (await http.get(f"/v1/workflows/experiments/{experiment_id}")).json()
    assert stale["last_run_id"] == second.json()["id"] and stale["is_stale"] is False
    clock.advance(60)
    scores = []
    for run in (first, second.json()):
        metrics = await http.get("/v1/workflows/experiments/metrics", params={"run_id": run["id"]})
        validate("GET", "/v1/workflows/experiments/metrics", metrics)
        scores.append(metrics.json()["score"])
    assert scores[1] > scores[0]


async def test_a_workflow_that_does_not_match_the_experiment_is_404(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    experiment_id = sim.world.experiments[0].id
    answer = await http.post(
        "/v1/workflows/experiments/runs", json={"experiment_id": experiment_id, "workflow_id": "workflow_other"}
    )
    assert answer.status_code == 404 and "not found" in answer.text


async def test_one_result_by_id_conforms(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    rows = (await http.get("/v1/workflows/experiments/results", params={"run_id": sim.run_ids["latest"]})).json()
    result_id = rows["data"][0]["id"]
    one = await http.get(f"/v1/workflows/experiments/results/{result_id}")
    validate("GET", "/v1/workflows/experiments/results/{result_id}", one)
    assert one.json() == rows["data"][0]
    assert (await http.get("/v1/workflows/experiments/results/expres_nope")).status_code == 404


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/workflows/experiments/runs", {}),
        ("/v1/workflows/experiments/results", {"run_id": "latest"}),
        ("/v1/workflows/experiments", {"workflow_id": "latest"}),
    ],
)
async def test_the_before_cursor_pages_back_on_every_list(
    http: httpx2.AsyncClient, sim: SimulatedRetab, path: str, query: dict[str, str]
) -> None:
    for _ in range(3):
        sim.add_experiment(f"paged-{len(sim.world.experiments)}")
    run = (await http.get(f"/v1/workflows/experiments/runs/{sim.run_ids['latest']}")).json()
    params = {k: run["workflow_id"] if k == "workflow_id" else sim.run_ids["latest"] for k in query}
    sim.world.experiments[-1].workflow_id = run["workflow_id"]
    whole = (await http.get(path, params={**params, "limit": "100"})).json()["data"]
    assert len(whole) >= 3
    second = (await http.get(path, params={**params, "limit": "1", "after": whole[0]["id"]})).json()
    assert second["data"] == whole[1:2] and second["list_metadata"]["before"] == whole[1]["id"]
    back = await http.get(path, params={**params, "limit": "1", "before": second["list_metadata"]["before"]})
    validate("GET", path, back)
    assert back.json()["data"] == whole[:1] and back.json()["list_metadata"]["after"] == whole[0]["id"]
