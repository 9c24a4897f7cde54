"""The run view (`ui://retab/run`) in a real host: headless Chromium renders it in a sandboxed iframe, the
official AppBridge talks to it, and the TypeScript MCP client carries its calls to a `retab-mcp` process
over streamable HTTP (interop/apps/host.mjs). The harness records what a person would see; these tests
judge it.

The finished, failed, compared and torn-down views are of `retab-mcp --demo`. A run that must still be
going when the browser opens it, and text written to attack the page, come from the simulated API held by
the test (on a loopback port), served by a `retab-mcp` process pointed at it.

Screenshots go to RETAB_MCP_SCREENSHOTS when set (the README's images), else to a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.scenario import opaque_id

from .helpers import TEST_KEY, LoopbackAPI
from .processes import serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "interop" / "apps" / "host.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOST_BOUND_S = 120  # the whole harness run, all scenarios included
SCRIPT = "<script>window.__pwned=1</script>"
IMAGE = '<img src=x onerror="window.__pwned=1">'
MINUS, TIMES = "\u2212", "\u00d7"  # as the view writes a negative delta and a count


def missing_parts() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (HOST.parent / "node_modules").is_dir():
        return "the test host's packages are not installed: run `npm ci` in interop/apps"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("RETAB_MCP_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module", autouse=True)
def the_parts_are_here() -> None:
    missing = missing_parts()
    if missing and os.environ.get("CI"):
        pytest.fail(f"{missing}; .ci/run installs it")
    if missing:
        pytest.skip(missing)


async def observe(port: int, plan: list[dict[str, Any]], out: Path, work: Path) -> dict[str, Any]:
    plan_file = work / f"plan-{port}.json"
    plan_file.write_text(json.dumps(plan))
    command = ["node", str(HOST), "--mcp", f"http://127.0.0.1:{port}/mcp", "--plan", str(plan_file)]
    with anyio.fail_after(HOST_BOUND_S):
        done = await anyio.run_process([*command, "--out", str(out), "--chromium", CHROMIUM], check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout)


DEMO_PLAN = [
    {
        "name": "completed",
        "tool": "triage_experiment_run",
        "args": {"run_id": opaque_id("exprun", "latest")},
        "screenshots": {"final": "run-view-completed.png"},
    },
    {
        "name": "dark",
        "tool": "get_experiment_run",
        "args": {"run_id": opaque_id("exprun", "latest")},
        "theme": "dark",
        "width": 360,
        "screenshots": {"final": "run-view-dark.png"},
    },
    {"name": "failed", "tool": "triage_experiment_run", "args": {"run_id": opaque_id("exprun", "failed")}},
    {
        "name": "compared",
        "tool": "compare_experiment_runs",
        "args": {"base_run_id": opaque_id("exprun", "older"), "candidate_run_id": opaque_id("exprun", "latest")},
    },
    {
        "name": "teardown",
        "kind": "teardown",
        "tool": "wait_for_run",
        "args": {"run_id": opaque_id("exprun", "long"), "timeout_s": 1},
    },
]


@pytest.fixture(scope="module")
def demo(screenshots: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("demo-host")

    async def main() -> dict[str, Any]:
        async with serve("--transport", "http") as served:
            return await observe(served.port, DEMO_PLAN, screenshots, work)

    return anyio.run(main)


@pytest.fixture(scope="module")
def held(screenshots: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Views of runs the test makes: one that is going when the view opens, one whose text attacks it."""
    work = tmp_path_factory.mktemp("held-host")

    async def main() -> dict[str, Any]:
        sim = SimulatedRetab(clock=RealClock())
        hostile = sim.add_run(documents=6, duration_s=30, document_errors={1: (SCRIPT, "E<b>1</b>"), 4: (IMAGE, None)})
        run = sim.world.run(hostile)
        assert run is not None
        run.created_t -= 60  # finished a while ago
        run.experiment.documents[0] = (run.experiment.documents[0][0], f"{IMAGE}.pdf")
        run.experiment.documents[2] = (run.experiment.documents[2][0], f"{SCRIPT}.pdf")
        seen: dict[str, Any] = {}
        async with anyio.create_task_group() as group:
            api = LoopbackAPI(sim, group)
            api.start()
            env = {"RETAB_API_BASE_URL": api.url, "RETAB_API_KEY": TEST_KEY}
            async with serve("--transport", "http", env=env, demo=False) as served:
                going = sim.add_run(documents=10, duration_s=20, queue_s=1)
                plan = [
                    {
                        "name": "running",
                        "kind": "follow",
                        "tool": "get_experiment_run",
                        "args": {"run_id": going},
                        "timeout_s": 40,
                        "screenshots": {"running": "run-view-running.png"},
                    },
                    {"name": "hostile", "tool": "triage_experiment_run", "args": {"run_id": hostile}},
                ]
                seen = await observe(served.port, plan, screenshots, work)
            await api.stop()
            group.cancel_scope.cancel()
        return seen

    return anyio.run(main)


def views(demo: dict[str, Any], held: dict[str, Any]) -> dict[str, Any]:
    return {**demo, **held}


def test_every_view_initializes_with_no_console_error_and_no_request_leaving_the_frame(
    demo: dict[str, Any], held: dict[str, Any]
) -> None:
    for name, seen in views(demo, held).items():
        assert seen["opened"]["uri"] == "ui://retab/run", name
        assert seen["consoleErrors"] == [], name
        assert seen["viewRequests"] == [], name
        assert seen["offsiteRequests"] == [], name
        assert seen["final"]["title"].startswith("Run exprun_"), name


def test_a_running_run_advances_to_completion_without_a_reload(held: dict[str, Any]) -> None:
    seen = held["running"]
    done = [d for d, _, _ in seen["progress"]]
    assert done == sorted(done), done
    assert any(0 < d < 10 for d in done), done  # the bar moved while the run went on
    assert seen["final"]["done"] == seen["final"]["total"] == 10
    assert seen["final"]["headline"].startswith("Completed")
    assert seen["final"]["chartShown"]
    waits = [c for c in seen["calls"] if c["name"] == "wait_for_run"]
    assert len(waits) >= 2
    assert all(2 <= c["arguments"]["timeout_s"] <= 10 for c in waits)
    assert [c["name"] for c in seen["calls"][-2:]] == ["triage_experiment_run", "get_run_document_scores"]


def test_a_completed_run_shows_its_score_against_the_prior_run_and_every_document_worst_first(
    demo: dict[str, Any],
) -> None:
    final = demo["completed"]["final"]
    assert f"0.873 against 0.910 ({MINUS}0.037)" in final["verdict"]
    assert "no detectable change (n=9" in final["verdict"]
    rows = final["chartRows"]
    assert len(rows) == 9  # every scored document, not only the few the model reads
    scores = [float(row.split(": ")[1].split(",")[0]) for row in rows]
    assert scores == sorted(scores)
    assert all(", prior " in row for row in rows)
    assert final["failures"][0].startswith(f"2{TIMES} invoice.total: expected number")
    assert final["fields"][0].startswith("vendor.vat_id")


def test_a_failed_run_shows_its_failed_documents_grouped_by_error(demo: dict[str, Any]) -> None:
    final = demo["failed"]["final"]
    assert final["headline"].startswith("Error · 18 of 40 documents")
    assert "Block 'Extract invoice' failed on 1 document" in final["note"]
    assert len(final["failures"]) == 3
    assert any("vendor.vat_id: 'FR 12 345' does not match" in group for group in final["failures"])
    assert not final["chartShown"]


def test_a_comparison_is_shown_against_its_base(demo: dict[str, Any]) -> None:
    final = demo["compared"]["final"]
    assert final["verdict"].startswith(f"Against {opaque_id('exprun', 'older')}")
    assert "no detectable change" in final["verdict"]


def test_text_from_the_api_is_shown_as_text_never_run(held: dict[str, Any]) -> None:
    final = held["hostile"]["final"]
    shown = " ".join(final["failures"] + final["chartRows"])
    assert SCRIPT in shown
    assert IMAGE in shown
    assert final["scripts"] == 1  # the view's own
    assert final["images"] == 0
    assert not final["pwned"]


def test_the_dark_theme_and_a_narrow_host_are_followed(demo: dict[str, Any]) -> None:
    final = demo["dark"]["final"]
    assert final["background"] == "rgb(24, 24, 27)"  # the host's --color-background-primary
    assert not final["overflowX"]  # readable at 360 px: nothing runs off the side
    assert demo["completed"]["final"]["background"] == "rgb(255, 255, 255)"


def test_screen_readers_get_a_progress_bar_headings_and_the_chart_as_text(demo: dict[str, Any]) -> None:
    aria = demo["completed"]["aria"]
    assert 'heading "Agreement by document, worst first" [level=2]' in aria
    assert "progressbar" in aria
    assert "inv_0003.pdf: 0.780, prior 0.931" in aria
    assert "status: Completed" in aria


def test_a_torn_down_view_stops_waiting(demo: dict[str, Any]) -> None:
    seen = demo["teardown"]
    assert seen["callsAtTeardown"] >= 1
    assert len(seen["calls"]) == seen["callsAtTeardown"]
    assert {c["name"] for c in seen["calls"]} == {"wait_for_run"}
