"""The README's samples are rendered from the snapshots the tests hold (tests/readme.py)."""

from __future__ import annotations

import difflib

from .readme import README, rendered, sample_names
from .snapshot import SNAPSHOTS


def test_the_readme_samples_are_the_snapshots() -> None:
    readme = README.read_text()
    expected = rendered(readme)
    diff = "".join(difflib.unified_diff(readme.splitlines(True), expected.splitlines(True), "README.md", "rendered"))
    assert readme == expected, f"README samples are stale; run `uv run python -m tests.readme`:\n{diff}"


def test_every_sample_names_a_snapshot_the_tests_write() -> None:
    names = sample_names(README.read_text())
    assert {"triage_latest.txt", "workflow_gate.txt", "eval_compare.txt"} <= set(names)
    assert all((SNAPSHOTS / name).exists() for name in names)


def test_a_changed_snapshot_makes_the_readme_stale() -> None:
    readme = README.read_text()
    name = sample_names(readme)[0]
    tampered = readme.replace((SNAPSHOTS / name).read_text().splitlines()[0], "Verdict: something else", 1)
    assert rendered(tampered) != tampered
