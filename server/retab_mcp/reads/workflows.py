"""Reading a workflow run for its triage: the run with its pending reviews, and every step (up to
`STEPS_READ`), read concurrently."""

from __future__ import annotations

from datetime import datetime

import anyio

from ..api.client import RetabClient
from ..api.errors import RetabError
from ..api.workflows import Step
from ..kinds.readers import WORKFLOW_KIND, WorkflowSnapshot
from ..views.workflow_triage import WorkflowEvidence
from .common import every_page, optional

STEPS_READ = 500


async def gather_workflow(client: RetabClient, run_id: str, now: datetime) -> WorkflowEvidence:
    """The run is required (its errors are the call's); steps are optional, a warning when unread."""
    warnings: list[str] = []
    snapshot: list[WorkflowSnapshot] = []
    steps: list[list[Step] | None] = [None]

    failures: list[RetabError] = []

    async def read_run() -> None:
        try:
            snapshot.append(await WORKFLOW_KIND.read(client, run_id, None, now, True))
        except RetabError as error:  # raised below, outside the task group, as it is
            failures.append(error)

    async def read_steps() -> None:
        steps[0] = await optional(
            "The run's steps", every_page(client.list_steps, STEPS_READ + 1, run_id=run_id, limit=100), warnings
        )

    async with anyio.create_task_group() as group:
        group.start_soon(read_run)
        group.start_soon(read_steps)
    if failures:
        raise failures[0]
    listed = steps[0] or []
    return WorkflowEvidence(snapshot[0], listed[:STEPS_READ], more_steps=len(listed) > STEPS_READ, warnings=warnings)
