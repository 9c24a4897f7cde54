"""The benchmarks, in one command: `uv run python benchmarks/run.py` (about 15 minutes).

The 15-minute soak (`benchmarks/soak.py`), the run view over a 10-minute run (`benchmarks/view.py`), the
replicas behind nginx (`benchmarks/replicas.py`, 5 minutes) and the capacity of one replica
(`benchmarks/capacity.py`, some 6 minutes) run on their own; BENCHMARKS.md includes their last reports.
The calibration of the comparison's verdicts (`benchmarks/calibration.py`, some 4 minutes of it) also runs
alone, rewriting only its own section. Start-up and per-call overhead each run twice in a row (their goals
hold only if they hold in both runs); alone: `benchmarks/startup.py`, `benchmarks/overhead.py`.

Prints each table and writes BENCHMARKS.md: the machine, the versions, every measure with its baseline
from the same run, and whether each goal holds. `--only startup,overhead,...` runs a subset (and does
not write the file).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import calibration, coalescing, context, overhead, polling, startup, tasks, tenants
from benchmarks.support import Section, table

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mcp", "httpx2", "pydantic", "anyio", "uvicorn", "mcp-server-time", "tiktoken")


async def _context() -> Section:
    section = await context.measure()
    context.whole_wait_goals(section)
    return section


MEASURES = {
    "startup": startup.measure,
    "overhead": overhead.measure,
    "polling": polling.measure,
    "patterns": polling.patterns,
    "coalescing": coalescing.coalescing,
    "scale": coalescing.scale,
    "context": _context,
    "calibration": calibration.measure,
    "tenants": tenants.measure,
    "tasks": tasks.measure,
}


def _machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            model,
        )
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in PACKAGES)
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({model}), "
        f"Python {platform.python_version()}; {versions}"
    )


def _kept(name: str, title: str, minutes: int) -> list[str]:
    """The last report of a benchmark that runs on its own for `minutes` (benchmarks/NAME.py)."""
    report = ROOT / "benchmarks" / f"{name}.md"
    if not report.exists():
        return [f"## {title}", "", f"Not run yet: `uv run python benchmarks/{name}.py` ({minutes} minutes).", ""]
    return [report.read_text()]


async def main(only: list[str]) -> None:
    started = time.perf_counter()
    sections: list[Section] = []
    for name, measure in MEASURES.items():
        if only and name not in only:
            continue
        print(f"--- {name}", file=sys.stderr, flush=True)
        section = await measure()
        sections.append(section)
        print(section.markdown(), flush=True)
    goals = [goal for section in sections for goal in section.goals]
    summary = table(["goal", "measured", "met"], goals, "llr")
    print("\n".join(summary))
    if only:
        return
    elapsed = time.perf_counter() - started
    report = "\n".join(
        [
            "# Benchmarks",
            "",
            f"Measured with `uv run python benchmarks/run.py` on {datetime.now(UTC):%Y-%m-%d}, in {elapsed:.0f} s, "
            f"on {_machine()}. Every figure is compared with a baseline measured in the same run; the ratios "
            "are what to compare across machines.",
            "",
            "## Goals",
            "",
            *summary,
            "",
            *(section.markdown() for section in sections),
            *_kept("soak", "Soak", 15),
            *_kept("view", "The run view over a 10-minute run", 11),
            *_kept("replicas", "Replicas behind nginx, sharing one poller per run", 5),
            *_kept("capacity", "Capacity of one replica", 6),
        ]
    )
    (ROOT / "BENCHMARKS.md").write_text(report)
    print(f"wrote BENCHMARKS.md ({elapsed:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(MEASURES)}")
    anyio.run(main, [name for name in parser.parse_args().only.split(",") if name])
