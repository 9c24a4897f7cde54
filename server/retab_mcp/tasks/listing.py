"""What `tools/list` says of tasks: to a 2025-11-25 host that declared the tasks capability, that the two waits
may run as tasks (`execution.taskSupport: "optional"`); to every other host, nothing (the listing it always
had, byte for byte). A 2026-07-28 host learns of tasks from `server/discover`, and the tool listing of that
revision has no such field.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.types import Tool, ToolExecution

from ..tools.sdk_compat import ToolChoice
from .service import WAITS, TaskService


def with_task_support(choose: ToolChoice) -> ToolChoice:
    """`choose` (the listing per caller it wraps), with the waits marked for hosts that take tasks."""

    def tools_for_caller(ctx: ServerRequestContext[Any, Any], tools: list[Tool]) -> list[Tool]:
        chosen = choose(ctx, tools)
        if not TaskService.offered_2025(ctx):
            return chosen
        optional = ToolExecution(task_support="optional")
        return [tool.model_copy(update={"execution": optional}) if tool.name in WAITS else tool for tool in chosen]

    return tools_for_caller
