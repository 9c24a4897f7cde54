"""Every command through its tool: the command line builds the server in process, calls the tool an agent
would, and prints what the agent would be told (its structuredContent with --json), with the next-step
hints written as commands for a person instead of tool calls.

`wait` calls `wait_for_run` again and again (each call at most RETAB_MCP_MAX_WAIT_S) until the run ends, a
review gate stops it, or --timeout passes, drawing a progress bar on stderr from the tool's progress.
The exit status says how the run stands (parser.EXIT_CODES).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from mcp import Client
from mcp.types import CallToolResult, TextContent

from ...base.clock import RealClock
from ...base.redaction import Redactor
from ...tools import names
from ...tools.server import build_server
from ..console import ProgressBar
from .parser import (
    EXIT_CALL_FAILED,
    EXIT_COMPLETED,
    EXIT_NEEDS_PERSON,
    EXIT_RUN_CANCELLED,
    EXIT_RUN_ERROR,
    EXIT_TIMED_OUT,
)

if TYPE_CHECKING:
    import httpx2

    from ...base.config import Settings

TICK_S = 1.0  # the progress bar's redraw interval on a terminal
EXIT_BY_STATUS = {"completed": EXIT_COMPLETED, "error": EXIT_RUN_ERROR, "cancelled": EXIT_RUN_CANCELLED}


@dataclass
class Session:
    """One command's server, in process, and how to print what its tools say."""

    settings: Settings
    transport: httpx2.AsyncBaseTransport | None
    as_json: bool = False
    client: Client = field(init=False)

    async def call(self, tool: str, arguments: Mapping[str, object], **kwargs: Any) -> CallToolResult:
        return await self.client.call_tool(tool, dict(arguments), **kwargs)

    def said(self, tool: str, result: CallToolResult) -> str | None:
        """The result's text for a person; or None when it is an error, said on stderr in one line."""
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        if not result.is_error:
            return for_a_person(text)
        print(f"retab-mcp: {text.removeprefix(f'Error executing tool {tool}: ')}", file=sys.stderr)
        return None

    def show(self, tool: str, result: CallToolResult) -> bool:
        text = self.said(tool, result)
        if text is None:
            return False
        print(json.dumps(result.structured_content, indent=2) if self.as_json else text)
        return True


async def in_session(
    settings: Settings, transport: httpx2.AsyncBaseTransport | None, as_json: bool, body: Any, *args: Any
) -> int:
    session = Session(settings, transport, as_json)
    async with Client(build_server(settings, transport=transport)) as client:
        session.client = client
        return await body(session, *args)


# Commands


async def call_and_show(session: Session, tool: str, arguments: Mapping[str, object]) -> int:
    """One tool, printed: exit 0 with a result, 1 with an error."""
    return EXIT_COMPLETED if session.show(tool, await session.call(tool, arguments)) else EXIT_CALL_FAILED


async def get(session: Session, run_id: str, kind: str | None) -> int:
    """A run's state; the exit status says how it stands."""
    from ...kinds import kind_of_id  # the run kinds and the API's models: for commands, not to serve

    run_kind = kind_of_id(run_id, kind)
    tool = names.GET_RUN if run_kind.name == "experiment" and kind is None else names.GET_RUN_ANY
    arguments: dict[str, object] = {"run_id": run_id}
    if tool == names.GET_RUN_ANY and kind:
        arguments["kind"] = kind
    result = await session.call(tool, arguments)
    if not session.show(tool, result):
        return EXIT_CALL_FAILED
    return exit_status(result.structured_content or {})


async def wait(session: Session, run_id: str, kind: str | None, timeout_s: float) -> int:
    """Wait for the run across as many tool calls as it takes, drawing the tool's progress."""
    bar = ProgressBar()
    redact = Redactor(session.settings.secrets)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        bar.update(progress, total, redact.text(message or ""))

    async def tick() -> None:
        while True:
            await anyio.sleep(TICK_S)
            bar.tick()

    clock = RealClock()
    deadline = clock.now() + timeout_s
    arguments: dict[str, object] = {"run_id": run_id}
    if kind:
        arguments["kind"] = kind
    # One read first, within the call deadline: a wrong id, key or URL is said at once, not after the wait.
    first = await session.call(names.GET_RUN_ANY, arguments)
    state: dict[str, Any] = first.structured_content or {}
    if first.is_error or state.get("finished") or state.get("needs_person"):
        bar.close()
        if not session.show(names.GET_RUN_ANY, first):
            return EXIT_CALL_FAILED
        return exit_status(state)
    result: CallToolResult | None = None
    async with anyio.create_task_group() as ticking:
        ticking.start_soon(tick)
        try:
            while True:
                left = deadline - clock.now()
                step = max(1.0, min(left, session.settings.max_wait_s))
                result = await session.call(
                    names.WAIT_RUN, arguments | {"timeout_s": step}, progress_callback=on_progress
                )
                data: dict[str, Any] = result.structured_content or {}
                if result.is_error or data.get("finished") or data.get("needs_person") or clock.now() >= deadline:
                    break
        finally:
            ticking.cancel_scope.cancel()
            bar.close()
    assert result is not None
    data: dict[str, Any] = result.structured_content or {}
    if result.is_error:
        session.said(names.WAIT_RUN, result)
        return EXIT_CALL_FAILED
    if session.as_json:
        print(json.dumps(data, indent=2))
    else:
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        if not data.get("finished") and not data.get("needs_person"):
            text = text.replace("Call again.", "Not finished: run the same command again to keep waiting.")
        print(for_a_person(text))
    return exit_status(data)


def exit_status(data: Mapping[str, object]) -> int:
    if data.get("needs_person"):
        return EXIT_NEEDS_PERSON
    if not data.get("finished"):
        return EXIT_TIMED_OUT
    return EXIT_BY_STATUS.get(str(data.get("status")), EXIT_COMPLETED)


async def start_then_wait(
    session: Session, tool: str, arguments: Mapping[str, object], then_wait: bool, timeout_s: float
) -> int:
    """Start a run (the person typing the command, with writes allowed, is the consent); then wait."""
    result = await session.call(tool, arguments)
    text = session.said(tool, result)
    if text is None:
        return EXIT_CALL_FAILED
    data: dict[str, Any] = result.structured_content or {}
    if not then_wait or not data.get("run_id"):
        print(json.dumps(data, indent=2) if session.as_json else text)
        return EXIT_COMPLETED if data.get("run_id") else EXIT_CALL_FAILED
    if not session.as_json:
        print(text.splitlines()[0])
    return await wait(session, str(data["run_id"]), None, timeout_s)


# Hints for a person: what a tool says to call, as the command that does it

_CALL = re.compile(r"\b(?P<tool>[a-z_]+)\((?P<arguments>[^()]*)\)")
_ARGUMENT = re.compile(r"(?P<name>\w+)=(?P<value>'[^']*'|\"[^\"]*\"|[\w.-]+)")
# tool -> (command, the arguments given as positionals in this order, the rest as --flags)
_COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    names.GET_RUN: ("get", ("run_id",)),
    names.GET_RUN_ANY: ("get", ("run_id",)),
    names.WAIT_RUN: ("wait", ("run_id",)),
    names.TRIAGE: ("triage", ("run_id",)),
    names.TRIAGE_RUN: ("triage", ("run_id",)),
    names.LIST_RESULTS: ("results", ("run_id",)),
    names.LIST_EVAL_RESULTS: ("results", ("run_id",)),
    names.GET_METRICS: ("metrics", ("run_id",)),
    names.COMPARE: ("compare", ("base_run_id", "candidate_run_id")),
    names.COMPARE_EVALS: ("compare", ("base_run_id", "candidate_run_id")),
    names.LIST_RUNS: ("list", ()),
    names.LIST_RUNS_ANY: ("list", ()),
    names.LIST_EXPERIMENTS: ("experiments", ("workflow_id",)),
    names.GET_EXPERIMENT: ("experiment", ("experiment_id",)),
    names.START: ("start", ("experiment_id",)),
    names.START_EVALS: ("start-evals", ("workflow_id",)),
    names.CANCEL: ("cancel", ("run_id",)),
}
_FLAGS = {"outcome": "status", "timeout_s": None}  # a tool's argument as the command's flag (None: left out)


def _command(match: re.Match[str]) -> str:
    tool = match["tool"]
    if tool not in _COMMANDS:
        return match[0]
    command, positional = _COMMANDS[tool]
    given = {m["name"]: m["value"].strip("'\"") for m in _ARGUMENT.finditer(match["arguments"])}
    words = ["retab-mcp", command, *(given.pop(name) for name in positional if name in given)]
    for name, value in given.items():
        flag = _FLAGS.get(name, name)
        if flag is not None:
            words += [f"--{flag.replace('_', '-')}", value]
    return f"`{' '.join(words)}`"


def for_a_person(text: str) -> str:
    """`text` with each tool call it suggests (`wait_for_run(run_id='x')`) written as the command that does
    the same (`retab-mcp wait x`), and bare tool names as commands."""
    text = _CALL.sub(_command, text)
    for tool, (command, _) in _COMMANDS.items():
        text = re.sub(rf"(?<![\w`-]){tool}(?![\w(])", f"`retab-mcp {command}`", text)
    return text
