"""The `retab-mcp` command: the composition root.

    retab-mcp [--transport stdio|http|sse] [--host H] [--port P] [--demo]   serve (stdio by default)
    retab-mcp demo | doctor                                                a walkthrough; a check of the setup
    retab-mcp get|wait|triage|results RUN_ID                               a run of any kind
    retab-mcp list [--kind experiment|workflow|eval] | metrics RUN_ID | compare [BASE] CANDIDATE
    retab-mcp experiments WORKFLOW_ID | experiment EXPERIMENT_ID
    retab-mcp start EXPERIMENT_ID | start-evals WORKFLOW_ID | cancel RUN_ID (writes: RETAB_MCP_ALLOW_WRITES=1)

The grammar is parser.py's; every command calls the tool an agent would (commands.py); serving is
serving.py's. Logs go to stderr; over stdio, stdout carries JSON-RPC only. Commands never end in a
traceback: a failure is one line on stderr and an exit status (parser.EXIT_CODES).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ...base.clock import RealClock
from ...base.config import KEY_HEADER, Settings, SettingsError
from ...base.logs import configure_call_log, configure_logging, redact_in_logs
from ...tools import names
from . import commands
from .parser import (
    EXIT_CALL_FAILED,
    EXIT_COMPLETED,
    EXIT_INTERRUPTED,
    EXIT_NEEDS_PERSON,
    EXIT_RUN_CANCELLED,
    EXIT_RUN_ERROR,
    EXIT_TIMED_OUT,
    EXIT_USAGE,
    build_parser,
)
from .serving import serve

if TYPE_CHECKING:
    import httpx2

    from ...simulator import SimulatedRetab

__all__ = [
    "EXIT_CALL_FAILED",
    "EXIT_COMPLETED",
    "EXIT_INTERRUPTED",
    "EXIT_NEEDS_PERSON",
    "EXIT_RUN_CANCELLED",
    "EXIT_RUN_ERROR",
    "EXIT_TIMED_OUT",
    "EXIT_USAGE",
    "main",
]

DEMO_KEY = "sk_demo_simulated"
DEMO_URL = "http://retab.simulated"
WRITES = ("start", "start-evals", "cancel")


def main(argv: Sequence[str] | None = None) -> None:
    status = EXIT_COMPLETED
    try:
        try:
            status = _main(argv)
        except* BrokenPipeError:  # raised inside the in-process client's task group, so maybe in a group
            # The reader went away (`retab-mcp list --json | head`): nothing more to say, nor anyone to say it to.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        print("\nretab-mcp: interrupted; any run goes on (this command only watched it).", file=sys.stderr)
        status = EXIT_INTERRUPTED
    sys.exit(status)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "compare" and len(args.run_ids) > 2:
        parser.error("compare takes [BASE] CANDIDATE: at most two run ids")
    secrets_in_env = ("RETAB_API_KEY", "RETAB_MCP_AUTH_TOKEN", "RETAB_MCP_PARTITION_SECRET")
    configure_logging(args.log_level, [os.environ.get(name) for name in secrets_in_env])
    if args.command == "demo":
        from ..demo import run_demo

        return run_demo()
    try:
        settings = Settings.load(
            base_url=args.base_url, max_wait_s=args.max_wait_s, per_user_keys=getattr(args, "per_user_keys", None)
        )
    except SettingsError as error:
        print(f"retab-mcp: {error}", file=sys.stderr)
        return EXIT_CALL_FAILED
    configure_call_log(settings.call_log, settings.secrets)
    for secret in settings.secrets:
        redact_in_logs(secret)  # a Redis password, too
    if settings.per_user_keys and (args.command is not None or args.transport == "stdio"):
        print(
            f"retab-mcp: per-user keys are for serving over HTTP or SSE, where each request carries its {KEY_HEADER}; "
            "add --transport http, or unset RETAB_MCP_PER_USER_KEYS for stdio and the commands.",
            file=sys.stderr,
        )
        return EXIT_CALL_FAILED
    sim: SimulatedRetab | None = None
    transport: httpx2.AsyncBaseTransport | None = None
    if args.demo:
        import httpx2

        from ... import simulator  # the demo's API; a real server never loads it

        sim = simulator.SimulatedRetab(clock=RealClock(), demo=True)
        # With per-user keys the simulated API takes any caller's key, and the server still has none.
        key = None if settings.per_user_keys else DEMO_KEY
        settings = settings.with_overrides(api_key=key, base_url=DEMO_URL)
        transport = httpx2.ASGITransport(app=sim)
    if args.command == "doctor":
        from ..doctor import run_doctor

        return anyio.run(run_doctor, settings, transport, args.demo, args.json)
    if args.command is None:
        return _serve(args, settings, transport)
    if args.command in WRITES and not settings.allow_writes:
        print(
            "retab-mcp: this command changes a run (starting one costs money), so it needs RETAB_MCP_ALLOW_WRITES=1 "
            "in the environment: e.g. `RETAB_MCP_ALLOW_WRITES=1 retab-mcp ...`.",
            file=sys.stderr,
        )
        return EXIT_CALL_FAILED
    body, arguments = _command(args, _Names(sim))
    return anyio.run(commands.in_session, settings, transport, args.json, body, *arguments)


class _Names:
    """In demo mode, runs and experiments may be named by their role in the scenario ('latest', 'failed',
    'awaiting_review', 'candidate', ...) instead of their ids."""

    def __init__(self, sim: SimulatedRetab | None) -> None:
        self.runs: dict[str, str] = {}
        self.experiments: dict[str, str] = {}
        if sim is not None:
            self.runs = {**sim.eval_run_ids, **sim.workflow_run_ids, **sim.run_ids}
            self.experiments = {e.name: e.id for e in sim.world.experiments}

    def run(self, name: str) -> str:
        return self.runs.get(name, name)

    def experiment(self, name: str) -> str:
        return self.experiments.get(name, name)


def _given(args: argparse.Namespace, *fields: str) -> dict[str, object]:
    return {name: getattr(args, name) for name in fields if getattr(args, name, None) is not None}


def _command(args: argparse.Namespace, named: _Names) -> tuple[Any, tuple[Any, ...]]:
    """The command's body (commands.py) and its arguments."""
    from ...kinds import kind_of_id  # the run kinds and the API's models: for commands, not to serve

    command = args.command
    show = commands.call_and_show
    if command in ("get", "wait", "triage", "results"):
        run_id = named.run(args.run_id)
        experiment = kind_of_id(run_id, args.kind).name == "experiment"
        if command == "get":
            return commands.get, (run_id, args.kind)
        if command == "wait":
            return commands.wait, (run_id, args.kind, args.timeout)
        if command == "triage":
            if experiment and args.kind is None:
                return show, (names.TRIAGE, {"run_id": run_id})
            return show, (names.TRIAGE_RUN, {"run_id": run_id} | _given(args, "kind"))
        if experiment:
            return show, (names.LIST_RESULTS, {"run_id": run_id} | _given(args, "status", "limit", "cursor"))
        outcome = {"outcome": args.status} if args.status else {}
        return show, (names.LIST_EVAL_RESULTS, {"run_id": run_id, **outcome} | _given(args, "limit", "cursor"))
    if command == "list":
        if args.kind == "experiment":
            return show, (names.LIST_RUNS, _given(args, "experiment_id", "workflow_id", "status", "limit", "cursor"))
        return show, (names.LIST_RUNS_ANY, _given(args, "kind", "workflow_id", "status", "limit", "cursor"))
    if command == "metrics":
        arguments = {"run_id": named.run(args.run_id)} | _given(args, "view", "document_id", "target_path")
        return show, (names.GET_METRICS, arguments)
    if command == "compare":
        *base, candidate = [named.run(run_id) for run_id in args.run_ids]
        tool = names.COMPARE if kind_of_id(candidate).name == "experiment" else names.COMPARE_EVALS
        return show, (tool, {"candidate_run_id": candidate} | ({"base_run_id": base[0]} if base else {}))
    if command == "experiments":
        return show, (names.LIST_EXPERIMENTS, _given(args, "workflow_id", "limit", "cursor"))
    if command == "experiment":
        return show, (names.GET_EXPERIMENT, {"experiment_id": named.experiment(args.experiment_id)})
    if command == "start":
        arguments = {"experiment_id": named.experiment(args.experiment_id)}
        return commands.start_then_wait, (names.START, arguments, args.wait, args.timeout)
    if command == "start-evals":
        arguments = _given(args, "workflow_id", "block_id", "eval_id")
        return commands.start_then_wait, (names.START_EVALS, arguments, args.wait, args.timeout)
    assert command == "cancel"
    return show, (names.CANCEL, {"run_id": named.run(args.run_id)})


def _serve(args: argparse.Namespace, settings: Settings, transport: httpx2.AsyncBaseTransport | None) -> int:
    options = None
    if args.transport != "stdio":
        from ...transports.http import HttpOptions, ServingError, check_binding  # only HTTP needs these

        options = HttpOptions(args.transport, args.host, args.port, args.stateless, args.auth_handled_by_proxy)
        try:
            check_binding(options, settings)
        except ServingError as error:
            print(f"retab-mcp: {error}", file=sys.stderr)
            return EXIT_CALL_FAILED
    return serve(settings, transport, options)
