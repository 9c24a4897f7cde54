"""The command line's grammar: serving options, and a subcommand per thing a person asks of a run."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ... import __version__
from ...api.statuses import KNOWN_STATUSES
from ...base.config import KEY_HEADER
from ...tools import names

EXIT_COMPLETED = 0
EXIT_CALL_FAILED = 1  # the run could not be read (key, network, unknown id), or a setting is wrong
EXIT_USAGE = 2  # the command line is wrong (argparse's own)
EXIT_TIMED_OUT = 3  # not finished: `wait` ran out of time, or `get` found it still going
EXIT_RUN_ERROR = 4
EXIT_RUN_CANCELLED = 5
EXIT_NEEDS_PERSON = 6  # a workflow run held at a review gate: a person must act in Retab
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
EXIT_CODES = """\
exit status of get, wait and start --wait:
  0    the run completed
  1    the run could not be read (key, network, unknown id) or a setting is wrong
  2    the command line is wrong
  3    the run is not finished (wait: timed out; get: still going)
  4    the run ended in error
  5    the run was cancelled
  6    the run waits at a review gate: a person must approve or reject it in Retab
  130  interrupted (Ctrl-C)
other commands: 0 with an answer, 1 when the call failed (said on stderr), 2 for a wrong command line."""

KINDS = ("experiment", "workflow", "eval")
RUN_STATUSES = (*KNOWN_STATUSES, "awaiting_review")


def port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65_535:
        raise argparse.ArgumentTypeError(f"{value} is not a port: 0 to 65535 (0: any free port)")
    return number


def seconds(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a number of seconds above 0")
    return number


def limit(maximum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not 1 <= number <= maximum:
            raise argparse.ArgumentTypeError(f"{value}: 1 to {maximum}")
        return number

    return parse


def common_options(*, top_level: bool) -> argparse.ArgumentParser:
    """Options accepted before or after a subcommand. Below the top level their defaults are suppressed,
    so a subcommand does not overwrite what was given before it."""

    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--demo", action="store_true", default=default(False), help="use the embedded simulated Retab API: no key"
    )
    options.add_argument("--base-url", default=default(None), help="Retab API base URL (env RETAB_API_BASE_URL)")
    options.add_argument(
        "--max-wait",
        type=seconds,
        default=default(None),
        dest="max_wait_s",
        help=f"cap on one {names.WAIT_RUN} call, seconds (env RETAB_MCP_MAX_WAIT_S, default 50)",
    )
    options.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the result as JSON (the tools' structuredContent) instead of text, for scripts",
    )
    options.add_argument(
        "--log-level",
        default=default("WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retab-mcp",
        description="MCP server that lets agents wait on, triage and compare Retab runs (experiment, workflow "
        "and eval runs); and the same answers for a person, a command per question.",
        parents=[common_options(top_level=True)],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"retab-mcp {__version__}")
    parser.add_argument(
        "--transport",
        choices=["stdio", "http", "sse"],
        default="stdio",
        help="stdio (default), streamable HTTP at /mcp, or SSE at /sse",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address for http/sse (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8000, help="port for http/sse (default 8000; 0: any free)")
    parser.add_argument(
        "--auth-handled-by-proxy",
        action="store_true",
        help="allow a non-loopback --host without RETAB_MCP_AUTH_TOKEN: a proxy in front authenticates callers",
    )
    parser.add_argument(
        "--per-user-keys",
        action="store_true",
        default=None,
        help=f"http/sse: each caller sends its own Retab key in the {KEY_HEADER} header; the server has none "
        "(env RETAB_MCP_PER_USER_KEYS)",
    )
    parser.add_argument(
        "--stateless",
        action="store_true",
        help="streamable HTTP without sessions (2025-era clients cannot cancel a running wait)",
    )
    commands = (
        "demo,doctor,get,wait,list,results,metrics,triage,compare,experiments,experiment,start,start-evals,cancel"
    )
    sub = parser.add_subparsers(dest="command", metavar="{" + commands + "}")
    sub.add_parser("demo", help="walk through what an agent sees, against the simulated API (no key)")
    common = common_options(top_level=False)
    raw = argparse.RawDescriptionHelpFormatter
    sub.add_parser(
        "doctor",
        help="check the key, the base URL, the wait cap and writes; print the host config (exit 0 if a call works)",
        parents=[common],
    )

    def run_command(name: str, text: str, *, codes: bool = False) -> argparse.ArgumentParser:
        extra = {"epilog": EXIT_CODES, "formatter_class": raw} if codes else {}
        command = sub.add_parser(name, help=text, parents=[common], **extra)  # pyright: ignore[reportArgumentType]
        command.add_argument("run_id", help="the run's id (exprun_…, run_… or wfevalrun_…); with --demo, a role")
        command.add_argument("--kind", choices=KINDS, help="the kind of run, when its id's prefix does not say")
        return command

    run_command("get", "one run's state, of any kind", codes=True)
    wait = run_command("wait", "wait for a run to end, with a progress bar", codes=True)
    wait.add_argument("--timeout", type=seconds, default=600.0, help="seconds to wait at most (default 600)")

    listing = sub.add_parser("list", help="runs, newest first", parents=[common])
    listing.add_argument("--kind", choices=KINDS, default="experiment", help="which runs (default experiment)")
    listing.add_argument("--experiment-id", dest="experiment_id", help="experiment runs of this experiment")
    listing.add_argument("--workflow-id", dest="workflow_id", help="runs of this workflow")
    listing.add_argument("--status", choices=RUN_STATUSES, help="only runs in this status")
    listing.add_argument("--limit", type=limit(25), default=10, help="rows per page, 1 to 25 (default 10)")
    listing.add_argument("--cursor", help="the next_cursor a page printed: the page after it")

    results = run_command("results", "a run's results: documents of an experiment run, evals of an eval run")
    results.add_argument(
        "--status",
        choices=[*KNOWN_STATUSES, "passed", "failed", "blocked"],
        help="experiment runs: only documents in this status (e.g. error); eval runs: passed, failed or blocked",
    )
    results.add_argument("--limit", type=limit(50), default=20, help="rows per page, 1 to 50 (default 20)")
    results.add_argument("--cursor", help="the next_cursor a page printed: the page after it")

    metrics = sub.add_parser("metrics", help="an experiment run's agreement scores", parents=[common])
    metrics.add_argument("run_id", help="the experiment run's id; with --demo, a role")
    metrics.add_argument(
        "--view",
        choices=["summary", "by_document", "by_target", "votes"],
        default="summary",
        help="summary (documents), by_document (a document's fields), by_target (a field's documents), votes",
    )
    metrics.add_argument("--document-id", dest="document_id", help="for by_document and votes")
    metrics.add_argument("--target-path", dest="target_path", help="a field path, e.g. invoice.total; by_target, votes")

    run_command("triage", "why a run ended as it did, in one report")
    compare = sub.add_parser(
        "compare",
        help="did a change help? compare two experiment runs, or two eval runs",
        parents=[common],
    )
    compare.add_argument(
        "run_ids",
        nargs="+",
        metavar="RUN",
        help="[BASE] CANDIDATE: the run before the change (omit it for the candidate's previous run) and after it",
    )
    experiments = sub.add_parser("experiments", help="a workflow's experiments", parents=[common])
    experiments.add_argument("workflow_id", help="the workflow's id")
    experiments.add_argument("--limit", type=limit(25), default=10, help="rows per page, 1 to 25 (default 10)")
    experiments.add_argument("--cursor", help="the next_cursor a page printed: the page after it")
    experiment = sub.add_parser(
        "experiment", help="one experiment, its latest runs, and what to do next", parents=[common]
    )
    experiment.add_argument("experiment_id", help="the experiment's id; with --demo, its name")

    start = sub.add_parser(
        "start",
        help="start a run of an experiment (costs money: needs RETAB_MCP_ALLOW_WRITES=1); --wait waits for it",
        parents=[common],
        epilog=EXIT_CODES,
        formatter_class=raw,
    )
    start.add_argument("experiment_id", help="the experiment's id; with --demo, its name")
    start.add_argument("--wait", action="store_true", help="then wait for the run, with a progress bar")
    start.add_argument("--timeout", type=seconds, default=600.0, help="with --wait: seconds at most (default 600)")
    evals = sub.add_parser(
        "start-evals",
        help="start an eval run of a workflow's evals (costs money: needs RETAB_MCP_ALLOW_WRITES=1)",
        parents=[common],
        epilog=EXIT_CODES,
        formatter_class=raw,
    )
    evals.add_argument("workflow_id", help="the workflow whose evals to run")
    evals.add_argument("--block-id", dest="block_id", help="only this block's evals")
    evals.add_argument("--eval-id", dest="eval_id", help="only this eval")
    evals.add_argument("--wait", action="store_true", help="then wait for the run, with a progress bar")
    evals.add_argument("--timeout", type=seconds, default=600.0, help="with --wait: seconds at most (default 600)")
    cancel = sub.add_parser(
        "cancel", help="cancel an experiment run (needs RETAB_MCP_ALLOW_WRITES=1)", parents=[common]
    )
    cancel.add_argument("run_id", help="the experiment run's id; with --demo, a role")
    return parser
