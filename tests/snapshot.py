"""Whole-output snapshots kept as files under tests/snapshots/.

A changed or missing snapshot fails the test, with a diff for a changed one; to accept a change or write
a new snapshot, rerun with UPDATE_SNAPSHOTS=1 and review the files in the commit. Both protocol eras are
compared with the same file, so a difference between them fails too (a reason to keep this helper rather
than a library that stores one snapshot per test parameter).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

SNAPSHOTS = Path(__file__).parent / "snapshots"


def assert_snapshot(name: str, actual: str, *, directory: Path = SNAPSHOTS) -> None:
    path = directory / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    if not path.exists():
        raise AssertionError(f"snapshot {name} is missing; write it with UPDATE_SNAPSHOTS=1 and review it")
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), name, "actual"))
        raise AssertionError(f"snapshot {name} changed; rerun with UPDATE_SNAPSHOTS=1 to accept:\n{diff}")
