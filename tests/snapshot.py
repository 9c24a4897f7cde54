"""Whole-output snapshots kept as files under tests/snapshots/.

A changed output fails the test with a diff; to accept it, rerun with UPDATE_SNAPSHOTS=1 and review the
files in the commit.
"""

from __future__ import annotations

import os
from pathlib import Path

SNAPSHOTS = Path(__file__).parent / "snapshots"


def assert_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            raise AssertionError(f"snapshot {name} is missing; create it locally with UPDATE_SNAPSHOTS=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert actual == path.read_text(), f"snapshot {name} changed; rerun with UPDATE_SNAPSHOTS=1 to accept"
