"""The prompts this server offers: a person picks one in their host and the model is walked through the tools.

Their bodies are words (descriptions.py) around checked ids, so a server registers them without importing
the tool families (those load at a tool's first call: prebuilt.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import Field

from ..api.client import check_id
from ..api.errors import InvalidIdError
from ..views.messages import explain
from . import descriptions


def triage_prompt(run_id: Annotated[str, Field(description="The experiment run to triage.")]) -> str:
    try:
        check_id(run_id)
    except InvalidIdError as error:
        raise MCPError(INVALID_PARAMS, explain(error, run_id)) from None
    return descriptions.TRIAGE_PROMPT.format(run_id=run_id)


def iterate_prompt(
    experiment_id: Annotated[str, Field(description="The experiment to iterate on.")],
) -> str:
    try:
        check_id(experiment_id, "experiment id")
    except InvalidIdError as error:
        raise MCPError(INVALID_PARAMS, explain(error, "")) from None
    return descriptions.ITERATE_PROMPT.format(experiment_id=experiment_id)


def iterate_block_prompt(
    workflow_id: Annotated[str, Field(description="The workflow whose block was edited.")],
    block_id: Annotated[str, Field(description="The edited block.")],
    experiment_id: Annotated[str | None, Field(description="The block's experiment, if known.")] = None,
) -> str:
    try:
        for value, what in ((workflow_id, "workflow id"), (block_id, "block id")):
            check_id(value, what)
        if experiment_id is not None:
            check_id(experiment_id, "experiment id")
    except InvalidIdError as error:
        raise MCPError(INVALID_PARAMS, explain(error, "")) from None
    experiment_step = (
        f'Call get_experiment(experiment_id="{experiment_id}").'
        if experiment_id
        else f'Find the block\'s experiment with list_experiments(workflow_id="{workflow_id}"), then call '
        "get_experiment."
    )
    return descriptions.ITERATE_BLOCK_PROMPT.format(
        workflow_id=workflow_id, block_id=block_id, experiment_step=experiment_step
    )


def register_prompts(server: MCPServer[Any]) -> None:
    server.prompt(
        name="triage-experiment-run",
        title="Triage an experiment run",
        description="Walk through a run: wait for it, triage it, drill into failures and scores, then report.",
    )(triage_prompt)
    server.prompt(
        name="iterate-on-experiment",
        title="Iterate on an experiment",
        description="Read an experiment, run it if asked or stale, wait, compare with the previous run, triage, "
        "and say what changed, whether it is real, and the edit most likely to help.",
    )(iterate_prompt)
    server.prompt(
        name="iterate-on-block",
        title="Check an edit to a block: evals, then agreement",
        description="After an edit to a block: run or find its evals, gate on regressions, then its experiment, "
        "and say whether the edit helped, by eval regressions and by consensus agreement.",
    )(iterate_block_prompt)
