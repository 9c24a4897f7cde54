"""Waits with no time limit: `wait_for_run` and `wait_for_runs` as MCP tasks, for hosts that ask.

A host that can take a task gets one for a wait (a task id at once, then its status, then its result) and
the wait lasts until the run ends, bounded by the task's TTL, not by the ~50 s a tool call may block; a
host that cannot gets today's bounded call, byte for byte. Both protocol eras:
- 2025-11-25 tasks (`basic/utilities/tasks`): legacy.py, for hosts that declare the `tasks` capability;
- 2026-07-28 tasks (the `io.modelcontextprotocol/tasks` extension, SEP-2663): modern.py, for requests that
  declare it.
The SDK (mcp 2.3) has the 2025 types and the Extension API but no tasks runtime; this package is that
runtime, small and in one place, to be swapped for the SDK's when it has one.

The parts: `TaskService` (service.py) starts, finds, ends and cancels tasks for both wires; runner.py runs a
task's wait as rounds of the wait tool itself; registry.py bounds and expires what is kept; owners.py binds
each task to its caller; shared.py keeps tasks in Redis for replicas; listing.py marks the waits in
`tools/list` for the hosts that take tasks. The server wires it in `tools/server.py` (`build_server`):
`TaskService(settings)`, its `TasksExtension`, the 2025 middleware, the listing, and `running` in the lifespan.
"""

from .legacy import middleware as legacy_middleware
from .listing import with_task_support
from .modern import TasksExtension
from .service import TaskService

__all__ = ["TaskService", "TasksExtension", "legacy_middleware", "with_task_support"]
