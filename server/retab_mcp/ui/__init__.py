"""What a host that renders MCP Apps shows: the live run view, one self-contained HTML document.

`run.html` holds its markup, style and script inline (hosts load a view under a policy that allows no
other source), builds every node from text it has escaped by construction (`textContent`, never HTML
from strings) and holds no data until the host hands it a tool result.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

RUN_VIEW_URI = "ui://retab/run"


@cache
def run_view_html() -> str:
    return files(__name__).joinpath("run.html").read_text(encoding="utf-8")
