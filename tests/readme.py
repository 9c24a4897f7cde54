"""The README's samples are the snapshots the tests hold, so they cannot drift from what a model reads.

A block between `<!-- sample NAME -->` (or `<!-- sample NAME lines=N -->`, for its first N lines) and
`<!-- /sample -->` is the snapshot tests/snapshots/NAME in a code fence. `uv run python -m tests.readme`
rewrites the blocks after a snapshot changed; tests/test_readme.py fails while they differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .snapshot import SNAPSHOTS

README = Path(__file__).parents[1] / "README.md"
_SAMPLE = re.compile(
    r"(<!-- sample (?P<name>[\w.]+)(?: lines=(?P<lines>\d+))? -->\n)(?P<body>.*?)(<!-- /sample -->)", re.S
)


def _block(name: str, lines: int | None) -> str:
    text = (SNAPSHOTS / name).read_text().splitlines()
    shown = text[:lines] if lines else text
    cut = ["…"] if lines and len(text) > lines else []
    return "```\n" + "\n".join([*shown, *cut]) + "\n```\n"


def rendered(readme: str) -> str:
    return _SAMPLE.sub(
        lambda m: m.group(1) + _block(m["name"], int(m["lines"]) if m["lines"] else None) + m.group(5), readme
    )


def sample_names(readme: str) -> list[str]:
    return [m["name"] for m in _SAMPLE.finditer(readme)]


if __name__ == "__main__":
    README.write_text(rendered(README.read_text()))
    print(f"README.md: {len(sample_names(README.read_text()))} samples rendered", file=sys.stderr)
