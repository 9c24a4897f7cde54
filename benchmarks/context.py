"""Context cost: what each tool puts in front of a model (bytes and cl100k_base tokens), against the raw
API JSON of the same data, and everything an agent reads while waiting out a 10-minute run."""

from __future__ import annotations

import json

import httpx2
from mcp import Client
from mcp.types import CallToolResult

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .support import KEY, SETTINGS, Section, json_of, table, text_of, tokens

WHOLE_WAIT_GOAL = 1_500


def worst_world(sim: SimulatedRetab) -> dict[str, str]:
    """The worst-case run, and twenty short runs to wait on together."""
    failing = sim.add_worst_case_run(parent_run_id=sim.run_ids["latest"])
    many = [sim.add_run(duration_s=30 + i, documents=5) for i in range(20)]
    sim.clock.advance(20)  # type: ignore[attr-defined]
    return {"failing": failing, **{f"run{i}": r for i, r in enumerate(many)}}


LONG_NAME = "Supplier invoices, EU and UK, multi-currency, scanned and native PDFs, with line items " * 3


def compare_paths(base: str, candidate: str) -> list[str]:
    return [f"/runs/{base}", f"/runs/{candidate}", f"/metrics?run_id={base}", f"/metrics?run_id={candidate}"]


def loop_world(sim: SimulatedRetab) -> dict[str, str]:
    """Experiments for the loop's tools: a typical pair of runs around a block edit, a worst-case pair on 100
    documents (the candidate unfinished), a workflow of two experiments and one of 25 with long names."""
    experiment = sim.add_experiment("bench-loop", documents=12)
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, everywhere=0.05, fields={"invoice.total": 0.08})
    candidate = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, everywhere=0.01)  # stale again: what get_experiment shows
    workflow = sim.world.experiments[-1].workflow_id
    sim.add_experiment("bench-loop-other", documents=40, workflow_id=workflow)
    wide = sim.add_experiment(LONG_NAME, documents=100)
    wide_base = sim.add_consensus_run(wide)
    sim.edit_block(wide, documents={i: (-0.1 if i % 2 else 0.1) for i in range(100)})
    wide_candidate = sim.add_consensus_run(wide, duration_s=100, finished=False)
    crowded = "workflow_bench_crowded"
    for i in range(25):
        sim.add_experiment(f"{LONG_NAME} #{i}", documents=10 + i, workflow_id=crowded)
    return {
        "experiment": experiment,
        "base": base,
        "candidate": candidate,
        "workflow": workflow,
        "wide_base": wide_base,
        "wide_candidate": wide_candidate,
        "crowded": crowded,
    }


async def measure() -> Section:
    section = Section(
        "Context cost",
        "Bytes a host may put in front of a model: the text content and the compact JSON of "
        "`structuredContent` (some hosts forward one, some both), with tokens counted by tiktoken's "
        "cl100k_base as a yardstick. The baseline is the raw API JSON a server that passes the API "
        "through would send for the same data. Budgets are the ones the tests hold each tool to. Every "
        "result that shows a run carries every published key of interface.json, null or not: that raised "
        "wait_for_runs' budget from 200 + 250 B a run to 200 + 320 B (5 runs: 1,800 B; the worst 20 runs, "
        "long errors: 7,500 B) and the unfinished wait_for_run's from 200 B to 700 B. The loop's tools: "
        "compare_experiment_runs 4 KB (cut to fit), get_experiment and start_experiment_run 1,200 B, "
        "list_experiments 1,500 B for a workflow's few experiments and 10,000 B for 25 rows with long names.",
    )
    clock = VirtualClock(1_000.0)
    sim = SimulatedRetab(clock=clock)
    server = build_server(SETTINGS, transport=httpx2.ASGITransport(app=sim), clock=clock)
    ids = sim.run_ids
    rows: list[tuple[object, ...]] = []
    async with (
        Client(server) as client,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=sim),
            base_url="http://retab.bench",
            headers={"Authorization": f"Bearer {KEY}"},
        ) as raw,
    ):
        worst = worst_world(sim)
        latest, failed, failing = ids["latest"], ids["failed"], worst["failing"]
        five = [worst[f"run{i}"] for i in range(5)]
        twenty = [worst[f"run{i}"] for i in range(19)] + [failing]
        triage_paths = lambda r: [f"/runs/{r}", f"/results?run_id={r}&limit=1000", f"/metrics?run_id={r}"]  # noqa: E731
        cases: list[tuple[str, str, dict[str, object], int, list[str]]] = [
            ("get_experiment_run", "completed run", {"run_id": latest}, 900, [f"/runs/{latest}"]),
            ("get_experiment_run", "failed run, 50 KB trace", {"run_id": failed}, 3000, [f"/runs/{failed}"]),
            ("get_experiment_run", "worst: 1 MB trace, 10 KB message", {"run_id": failing}, 3000, [f"/runs/{failing}"]),
            (
                "wait_for_run",
                "unfinished (10 s)",
                {"run_id": ids["long"], "timeout_s": 10},
                700,
                [f"/runs/{ids['long']}"],
            ),
            ("wait_for_run", "finished", {"run_id": latest}, 900, [f"/runs/{latest}"]),
            ("wait_for_runs", "5 runs, 1 s", {"run_ids": five, "timeout_s": 1}, 1800, [f"/runs/{r}" for r in five]),
            (
                "wait_for_runs",
                "worst: 20 runs",
                {"run_ids": twenty, "timeout_s": 1},
                7500,
                [f"/runs/{r}" for r in twenty],
            ),
            ("list_experiment_runs", "10 rows", {}, 2800, ["/runs?limit=10"]),
            ("list_experiment_runs", "worst: 25 rows", {"limit": 25}, 6500, ["/runs?limit=25"]),
            (
                "list_experiment_run_results",
                "20 rows",
                {"run_id": latest},
                3000,
                [f"/results?run_id={latest}&limit=20"],
            ),
            (
                "list_experiment_run_results",
                "worst: 50 rows asked, long names",
                {"run_id": failing, "limit": 50},
                8000,
                [f"/results?run_id={failing}&limit=50"],
            ),
            ("get_experiment_run_metrics", "summary", {"run_id": latest}, 2000, [f"/metrics?run_id={latest}"]),
            (
                "get_experiment_run_metrics",
                "worst: 90 documents, long names",
                {"run_id": failing},
                2000,
                [f"/metrics?run_id={failing}"],
            ),
            ("triage_experiment_run", "completed, score dropped", {"run_id": latest}, 4096, triage_paths(latest)),
            ("triage_experiment_run", "failed, 50 KB trace", {"run_id": failed}, 4096, triage_paths(failed)),
            (
                "triage_experiment_run",
                "worst: 46 failures, long everything",
                {"run_id": failing},
                4096,
                triage_paths(failing),
            ),
        ]
        cancels: list[tuple[str, str, dict[str, object], int, list[str]]] = [
            ("cancel_experiment_run", "a running run", {"run_id": ids["long"]}, 900, [f"/runs/{ids['long']}"]),
            (
                "cancel_experiment_run",
                "worst: an ended run, 1 MB trace",
                {"run_id": failing},
                3000,
                [f"/runs/{failing}"],
            ),
        ]
        loop = loop_world(sim)
        clock.advance(50)  # the 100-document candidate half done; every other run keeps its state
        loop_cases: list[tuple[str, str, dict[str, object], int, list[str]]] = [
            (
                "compare_experiment_runs",
                "12 documents, improved",
                {"base_run_id": loop["base"], "candidate_run_id": loop["candidate"]},
                4096,
                compare_paths(loop["base"], loop["candidate"]),
            ),
            (
                "compare_experiment_runs",
                "worst: 100 documents, long names, unfinished",
                {"base_run_id": loop["wide_base"], "candidate_run_id": loop["wide_candidate"]},
                4096,
                compare_paths(loop["wide_base"], loop["wide_candidate"]),
            ),
            (
                "list_experiments",
                "a workflow's 2 experiments",
                {"workflow_id": loop["workflow"]},
                1500,
                [f"?workflow_id={loop['workflow']}&limit=10"],
            ),
            (
                "list_experiments",
                "worst: 25 rows, long names",
                {"workflow_id": loop["crowded"], "limit": 25},
                10000,
                [f"?workflow_id={loop['crowded']}&limit=25"],
            ),
            (
                "get_experiment",
                "stale, with runs",
                {"experiment_id": loop["experiment"]},
                1200,
                [f"/{loop['experiment']}", f"/runs?experiment_id={loop['experiment']}&limit=2"],
            ),
        ]
        cases += loop_cases
        starts: list[tuple[str, str, dict[str, object], int, list[str]]] = [
            (
                "start_experiment_run",
                "started",
                {"experiment_id": loop["experiment"]},
                1200,
                [f"/runs?experiment_id={loop['experiment']}&limit=1"],
            ),
            (
                "start_experiment_run",
                "worst: one already going",
                {"experiment_id": loop["experiment"]},
                1200,
                [f"/runs?experiment_id={loop['experiment']}&limit=1"],
            ),
        ]
        cancels += starts
        writer = build_server(
            SETTINGS.with_overrides(allow_writes=True), transport=httpx2.ASGITransport(app=sim), clock=clock
        )
        async with Client(writer) as writes:  # after the read tools: cancelling changes the runs they read
            for tool, case, arguments, budget, raw_paths in cases + cancels:
                caller = writes if tool in ("cancel_experiment_run", "start_experiment_run") else client
                result = await caller.call_tool(tool, arguments)
                assert not result.is_error, (tool, text_of(result))
                body = b"".join([(await raw.get(f"/v1/workflows/experiments{p}")).content for p in raw_paths])
                rows.append(_sized(section, tool, case, budget, result, body))
    header = [
        "tool",
        "case",
        "text B",
        "JSON B",
        "total B",
        "budget",
        "tokens",
        "raw API B",
        "raw tokens",
        "total / raw",
    ]
    rows += await _kinds(section)
    section.add(*table(header, rows, "ll" + "r" * 8))
    section.add("", *await _listing(section))
    section.add("", *await _whole_wait())
    return section


# (tool, case, arguments, budget), as tests/test_kinds.py holds them: a run's state 900 B when there is
# nothing to act on, 1,500 B when a review or a failure is to be read (an experiment run's failure: 3,000 B);
# triage and comparisons 4 KB; lists of runs as list_experiment_runs; an eval run's results 5,000 B for 12
# evals (each row carries actual, expected, score, threshold and Retab's reason).
KIND_CASES: list[tuple[str, str, dict[str, object], int]] = [
    ("get_run", "workflow run, completed", {"run_id": "completed"}, 900),
    ("get_run", "workflow run at a review gate", {"run_id": "awaiting_review"}, 1500),
    ("get_run", "workflow run, failed", {"run_id": "failed"}, 1500),
    ("get_run", "eval run, completed", {"run_id": "candidate"}, 900),
    ("wait_for_run", "workflow run at a review gate", {"run_id": "awaiting_review"}, 1500),
    ("triage_run", "workflow run, failed", {"run_id": "failed"}, 4096),
    ("triage_run", "workflow run at a review gate", {"run_id": "awaiting_review"}, 4096),
    ("triage_run", "eval run: failed, blocked, drifted", {"run_id": "candidate"}, 4096),
    ("list_runs", "workflow runs, 10 rows", {"kind": "workflow"}, 2800),
    ("list_runs", "eval runs, 10 rows", {"kind": "eval"}, 2800),
    ("list_eval_results", "12 evals", {"run_id": "candidate"}, 5000),
    ("compare_eval_runs", "regressions and a fix", {"candidate_run_id": "candidate"}, 4096),
    ("compare_eval_runs", "unchanged, flipping", {"candidate_run_id": "noisy_candidate"}, 4096),
    ("start_eval_run", "started", {"workflow_id": "support"}, 1200),
]


def _sized(
    section: Section, tool: str, case: str, budget: int, result: CallToolResult, body: bytes
) -> tuple[object, ...]:
    """A result's row of the size table (its text and JSON against `body`, every API answer the tool read),
    and its goal: text and JSON within `budget` bytes."""
    text, data = text_of(result), json_of(result)
    total = len(text.encode()) + len(data.encode())
    section.goal(f"{tool}, {case}: <= {budget} B", f"{total} B", total <= budget)
    return (
        tool,
        case,
        len(text.encode()),
        len(data.encode()),
        total,
        budget,
        tokens(text) + tokens(data),
        len(body),
        tokens(body.decode(errors="replace")),
        f"{total / len(body):.2f}" if body else "-",
    )


async def _kinds(section: Section) -> list[tuple[object, ...]]:
    """The tools of workflow and eval runs on the simulator's scenarios; the raw baseline is every API
    answer the tool read, fetched again as a pass-through server would forward it."""
    clock = VirtualClock(1_000.0)
    sim = SimulatedRetab(clock=clock)
    writer = build_server(
        SETTINGS.with_overrides(allow_writes=True), transport=httpx2.ASGITransport(app=sim), clock=clock
    )
    ids = {**sim.workflow_run_ids, **sim.eval_run_ids, **sim.workflow_ids}
    rows: list[tuple[object, ...]] = []
    async with (
        Client(writer) as client,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=sim),
            base_url="http://retab.bench",
            headers={"Authorization": f"Bearer {KEY}"},
        ) as raw,
    ):
        for tool, case, arguments, budget in KIND_CASES:
            given = {name: ids.get(str(value), value) for name, value in arguments.items()}
            before = len(sim.requests)
            result = await client.call_tool(tool, given)
            assert not result.is_error, (tool, text_of(result))
            read = [r for r in sim.requests[before:] if r.method == "GET"]
            body = b"".join([(await raw.get(r.path, params=r.query)).content for r in read])
            rows.append(_sized(section, tool, case, budget, result, body))
    return rows


LISTING_GOAL = 14_000
LISTING_BEFORE = 9_461  # the 10 read tools of experiment runs alone, before workflow and eval runs


async def _listing(section: Section) -> list[str]:
    """What a host puts before the model on every turn: each listed tool's name, description and input
    schema, as compact JSON, for the default server (writes off) and with writes allowed."""
    rows: list[tuple[object, ...]] = []
    measured: dict[bool, int] = {}
    for writes in (False, True):
        server = build_server(SETTINGS.with_overrides(allow_writes=writes))
        async with Client(server) as client:
            tools = (await client.list_tools()).tools
        each = [
            len(
                json.dumps(
                    {"name": t.name, "description": t.description, "inputSchema": t.input_schema}, separators=(",", ":")
                ).encode()
            )
            for t in tools
        ]
        measured[writes] = sum(each)
        rows.append(("writes allowed" if writes else "default (writes off)", len(tools), sum(each), max(each)))
    section.goal(
        f"listing, default (writes off): <= {LISTING_GOAL:,} B",
        f"{measured[False]:,} B ({measured[False] - LISTING_BEFORE:+,} B against the experiment-only 9,461 B)",
        measured[False] <= LISTING_GOAL,
    )
    return [
        "The tool listing a host puts before the model on every turn (name, description and input schema of "
        "each listed tool, compact JSON); before workflow and eval runs, the 10 read tools took 9,461 B:",
        "",
        *table(["server", "tools", "bytes", "largest tool"], rows, "lrrr"),
    ]


async def _whole_wait() -> list[str]:
    """Every result an agent reads while waiting out a 10-minute run with wait_for_run(timeout_s=45)."""
    clock = VirtualClock(1_000.0)
    sim = SimulatedRetab(clock=clock)
    server = build_server(SETTINGS, transport=httpx2.ASGITransport(app=sim), clock=clock)
    run_id = sim.add_run(duration_s=600, documents=100)
    text_bytes = json_bytes = text_tokens = json_tokens = calls = 0
    async with Client(server) as client:
        while True:
            calls += 1
            result = await client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 45})
            text, data = text_of(result), json_of(result)
            text_bytes += len(text.encode())
            json_bytes += len(data.encode())
            text_tokens += tokens(text)
            json_tokens += tokens(data)
            if (result.structured_content or {}).get("finished"):
                break
    rows = [
        ("text only (what hosts put before the model)", text_bytes, text_tokens, f"goal <= {WHOLE_WAIT_GOAL} B"),
        ("structuredContent only (for programs: every published key)", json_bytes, json_tokens, "no goal"),
        ("both", text_bytes + json_bytes, text_tokens + json_tokens, "no goal"),
    ]
    _WHOLE.update(text=text_bytes, json=json_bytes, calls=calls)
    return [
        f"Waiting out a 10-minute run (100 documents) with `wait_for_run(timeout_s=45)`: {calls} calls, "
        "everything the agent reads added up, by what its host forwards:",
        "",
        *table(["what the host forwards", "bytes", "tokens", "goal"], rows),
    ]


_WHOLE: dict[str, int] = {}


def whole_wait_goals(section: Section) -> None:
    """The goal is the text channel's: structuredContent is for programs, and carries every published key
    (interface.json) in each result, so its size is reported but not held to the text's budget."""
    text = _WHOLE["text"]
    section.goal(f"whole 10-min wait, text only: <= {WHOLE_WAIT_GOAL} B", f"{text} B", text <= WHOLE_WAIT_GOAL)
