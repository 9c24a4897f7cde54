"""The live run view for hosts that render MCP Apps (the `io.modelcontextprotocol/ui` extension).

The tools that show a run of any kind point at `ui://retab/run` through `_meta.ui.resourceUri`; such a
host renders the view beside the result and the view calls the read tools itself, through the host, to
stay current and to say why the run ended as it did: an experiment run's score against the prior run, a
workflow run's steps and the review gate it waits at, an eval run's passed / failed / blocked, and a
comparison of two runs. The one tool only the view needs, every document's score for its chart, is
app-only (app_only.py, imported at its first call like every tool family). A host that did not negotiate
the extension gets the listing and the results it always had: no `_meta.ui`, no app-only tool
(`tools_for_caller`).
"""

from __future__ import annotations

from typing import Any

from mcp.server.apps import Apps, client_supports_apps
from mcp.server.context import ServerRequestContext
from mcp.types import Tool

from ..ui import RUN_VIEW_URI, run_view_html

SHOWN_BY_VIEW = {"ui": {"resourceUri": RUN_VIEW_URI}}  # _meta of the tools whose results the view shows
APP_ONLY = {"ui": {"resourceUri": RUN_VIEW_URI, "visibility": ["app"]}}


def extension() -> Apps:
    """The Apps extension with the view: advertises the capability and serves the HTML."""
    apps = Apps()
    apps.add_html_resource(
        RUN_VIEW_URI,
        run_view_html(),
        name="run-view",
        title="Retab run",
        description=(
            "A run's progress and why it ended so: an experiment run's score against the prior run, a workflow "
            "run's steps and the review gate it waits at, an eval run's passed / failed / blocked."
        ),
        prefers_border=True,
    )
    return apps


def tools_for_caller(ctx: ServerRequestContext[Any, Any], tools: list[Tool]) -> list[Tool]:
    """All the tools for a host that renders the view; for any other, the listing without the view."""
    if client_supports_apps(ctx):
        return tools
    return [_without_view(tool) for tool in tools if (tool.meta or {}).get("ui") != APP_ONLY["ui"]]


def _without_view(tool: Tool) -> Tool:
    if not tool.meta or "ui" not in tool.meta:
        return tool
    meta = {key: value for key, value in tool.meta.items() if key != "ui"}
    return tool.model_copy(update={"meta": meta or None})
