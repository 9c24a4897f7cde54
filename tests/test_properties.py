"""Generated input: whatever the API sends, and whatever string a caller passes as a run id.

One MCP server and client live for the whole module in a blocking portal's event loop; the API behind
the server is a function that answers with the generated body, so each example costs one tool call.
Examples are derandomized so CI sees the same inputs every time; `HYPOTHESIS_EXAMPLES=N` runs a bigger,
random campaign locally.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult

from retab_mcp.base.config import Settings
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .helpers import TEST_KEY, size_of, text_of

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")  # a failing 20 KB example

CAMPAIGN = int(os.environ.get("HYPOTHESIS_EXAMPLES", "0"))
PROFILE = settings(
    max_examples=CAMPAIGN or 150,
    derandomize=not CAMPAIGN,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BUDGETS = {"get_experiment_run": 3_000, "wait_for_run": 3_000, "triage_experiment_run": 4_096}
RUNS_PATH = "/v1/workflows/experiments/runs/"


@dataclass
class FakeAPI:
    """Answers every request with the body set for its endpoint, and records the raw paths asked."""

    bodies: dict[str, bytes] = field(default_factory=dict[str, bytes])
    status: int = 200
    paths: list[bytes] = field(default_factory=list[bytes])

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.paths.append(request.url.raw_path)
        endpoint = next((e for e in ("results", "metrics") if f"/{e}" in request.url.path), "runs")
        return httpx2.Response(self.status, content=self.bodies.get(endpoint, b"{}"))


@dataclass
class Harness:
    portal: BlockingPortal
    client: Client
    api: FakeAPI

    def call(self, tool: str, **arguments: Any) -> CallToolResult:
        return self.portal.call(self.client.call_tool, tool, arguments)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    api = FakeAPI()
    server = build_server(
        Settings(api_key=TEST_KEY, base_url="http://retab.test", max_retries=0),
        transport=httpx2.MockTransport(api.handle),
        clock=VirtualClock(1_000.0),
    )
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(server)) as client:
        yield Harness(portal, client, api)


def assert_answered(result: CallToolResult, tool: str) -> None:
    """A summary within budget, or an error that says something: never a crash."""
    text = text_of(result)
    assert text != f"Error executing tool {tool}", "an exception escaped the tool"
    assert "Traceback" not in text
    if result.is_error:
        assert len(text) > len(f"Error executing tool {tool}: ")
    else:
        assert size_of(result) <= BUDGETS[tool], size_of(result)


# Strategies: any JSON, and run-shaped JSON whose fields take any JSON value or a value of the spec's type.

numbers = st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN or Infinity
scalars = st.none() | st.booleans() | st.integers() | numbers | st.text(max_size=300)
any_json = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=15,
)
# Long strings built by repetition: as long as a pathological API answer, cheap to generate.
huge_text = st.builds(
    lambda piece, times: piece * times,
    st.text(alphabet=string.printable, min_size=1, max_size=40),
    st.integers(200, 600),
)
statuses = st.sampled_from(["pending", "queued", "running", "completed", "error", "cancelled", "paused"]) | st.text()
timestamps = st.sampled_from(["2026-11-28T09:00:00Z", "2026-11-28T09:00:00+00:00", "yesterday", ""]) | any_json
lifecycles = st.fixed_dictionaries(
    {"status": statuses},
    optional={
        "message": st.text() | huge_text | any_json,
        "reason": st.text() | huge_text,
        "details": st.fixed_dictionaries(
            {}, optional={"stack_trace": huge_text | st.text(), "error_code": st.text(), "block_name": st.text()}
        )
        | any_json,
    },
)
runs = st.fixed_dictionaries(
    {},
    optional={
        "id": st.from_regex(r"\Aexprun_[A-Za-z0-9_-]{1,30}\Z") | st.text() | huge_text | any_json,
        "lifecycle": lifecycles | statuses | any_json,
        "timing": st.fixed_dictionaries(
            {}, optional={"created_at": timestamps, "started_at": timestamps, "duration_ms": st.integers() | any_json}
        )
        | any_json,
        "score": numbers | any_json,
        "total_document_count": st.integers(min_value=-5, max_value=10**9) | any_json,
        "completed_document_count": st.integers(min_value=-5, max_value=10**9) | any_json,
        "error_count": st.integers() | any_json,
        "workflow": any_json,
        "block_kind": any_json,
        "parent_run_id": st.text() | huge_text,
        "experiment_id": huge_text | any_json,
        "block_type": huge_text | any_json,
        "n_consensus": st.integers() | any_json,
    },
)
bodies = runs | any_json


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


@PROFILE
@given(body=bodies, tool=st.sampled_from(["get_experiment_run", "wait_for_run"]))
@pytest.mark.slow
def test_any_run_body_gives_a_summary_within_budget_or_a_clear_error(harness: Harness, body: Any, tool: str) -> None:
    harness.api.bodies = {"runs": encode(body)}
    arguments = {"timeout_s": 1} if tool == "wait_for_run" else {}
    assert_answered(harness.call(tool, run_id="exprun_1", **arguments), tool)


results_pages = (
    st.fixed_dictionaries(
        {
            "data": st.lists(
                st.fixed_dictionaries({"id": st.text(min_size=1)}, optional={"lifecycle": lifecycles}), max_size=30
            )
        }
    )
    | any_json
)
metrics_bodies = (
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["summary", "stale_metrics", "no_metrics", "by_document", "other"]) | st.text()},
        optional={
            "score": numbers | any_json,
            "prior_score": numbers | any_json,
            "documents": st.lists(
                st.fixed_dictionaries({"id": st.text(min_size=1)}, optional={"score": numbers, "filename": huge_text}),
                max_size=30,
            )
            | any_json,
            "targets": st.lists(st.fixed_dictionaries({"path": huge_text | st.text()}, optional={"score": numbers}))
            | any_json,
            "stale_reasons": st.lists(huge_text) | any_json,
            "message": huge_text | any_json,
        },
    )
    | any_json
)


@PROFILE
@given(run=runs, results=results_pages, metrics=metrics_bodies)
@pytest.mark.slow
def test_triage_of_any_answers_stays_within_4_kb_or_is_a_clear_error(
    harness: Harness, run: Any, results: Any, metrics: Any
) -> None:
    harness.api.bodies = {"runs": encode(run), "results": encode(results), "metrics": encode(metrics)}
    assert_answered(harness.call("triage_experiment_run", run_id="exprun_1"), "triage_experiment_run")


tricky_ids = st.sampled_from(
    ["../admin", "..", ".", "%2e%2e", "a/b", "a?x=1", "a#b", "a b", "é", "exprun_2\n", "", "x" * 129, "\x00"]
)
any_ids = tricky_ids | st.text() | st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z")


@settings(PROFILE, max_examples=(CAMPAIGN or 300))
@given(run_id=any_ids)
@pytest.mark.slow
def test_any_run_id_is_refused_unsent_or_reaches_exactly_its_own_path(harness: Harness, run_id: str) -> None:
    harness.api.paths.clear()
    harness.api.bodies = {"runs": encode({"id": "exprun_1", "lifecycle": {"status": "completed"}})}
    result = harness.call("get_experiment_run", run_id=run_id)
    if result.is_error:
        assert harness.api.paths == [], "a refused id must send nothing"
        assert "is not a valid run id" in text_of(result)
    else:
        assert harness.api.paths == [f"{RUNS_PATH}{run_id}".encode()]


def test_the_generators_reach_both_outcomes(harness: Harness) -> None:
    """Guard against a vacuous property: a valid body gives a summary, a broken one an error."""
    harness.api.bodies = {"runs": encode({"id": "exprun_1", "lifecycle": {"status": "running"}})}
    assert not harness.call("get_experiment_run", run_id="exprun_1").is_error
    harness.api.bodies = {"runs": encode([1, 2, 3])}
    assert harness.call("get_experiment_run", run_id="exprun_1").is_error
