"""Whole-output snapshots kept as files under tests/snapshots/.

A changed or missing snapshot fails the test, with a diff for a changed one; to accept a change or write
a new snapshot, rerun with UPDATE_SNAPSHOTS=1 and review the files in the commit. Both protocol eras are
compared with the same file, so a difference between them fails too.

Why not a library: syrupy (7.0) stores one snapshot per test parameter, named after the test id; sharing
one named file between the eras takes a subclass of its SingleFileSnapshotExtension that overrides the
snapshot name, directory and location, about as much code as this helper. inline-snapshot keeps values in
the test source, or in external files named by their hash, so a review would see a new hash instead of
a diff of `get_completed.txt`. The files here are plain text that a reviewer reads as a model would.
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
