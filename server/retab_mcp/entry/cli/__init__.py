"""The `retab-mcp` command: the composition root.

    retab-mcp [--transport stdio|http|sse] [--host H] [--port P] [--demo]   serve (stdio by default)
    retab-mcp demo                                                         a walkthrough for a newcomer
    retab-mcp get RUN_ID [--demo]                                          one run's summary
    retab-mcp wait RUN_ID [--timeout S] [--demo]                           wait, with a progress bar

Logs go to stderr; over stdio, stdout carries JSON-RPC only. `get` and `wait` say how the run stands in
their exit status (EXIT_CODES), and never end in a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from mcp.types import CallToolResult, TextContent

from ... import __version__
from ...api.client import RetabClient, call_deadline
from ...api.errors import RetabError
from ...api.statuses import CANCELLED, COMPLETED, ERROR, KNOWN_STATUSES
from ...base.clock import RealClock
from ...base.config import KEY_HEADER, Settings, SettingsError
from ...base.logs import configure_call_log, configure_logging, redact_in_logs
from ...base.redaction import Redactor
from ...kinds.readers import EXPERIMENT_KIND
from ...tools import names
from ...tools.server import build_server
from ...transports.stdio import serve_stdio
from ...views.messages import explain
from ...views.run import summarize
from ...views.runs import wait_view
from ...watch.watcher import WaitOutcome, wait_for_finish
from ..console import ProgressBar

if TYPE_CHECKING:
    import httpx2

    from ...simulator import SimulatedRetab
    from ...transports.http import HttpOptions

DEMO_KEY = "sk_demo_simulated"
DEMO_URL = "http://retab.simulated"

EXIT_COMPLETED = 0
EXIT_CALL_FAILED = 1  # the run could not be read (key, network, unknown id), or a setting is wrong
EXIT_USAGE = 2  # argparse's own
EXIT_TIMED_OUT = 3  # not finished: `wait` ran out of time, or `get` found it still going
EXIT_RUN_ERROR = 4
EXIT_RUN_CANCELLED = 5
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
EXIT_BY_STATUS = {COMPLETED: EXIT_COMPLETED, ERROR: EXIT_RUN_ERROR, CANCELLED: EXIT_RUN_CANCELLED}
EXIT_CODES = """\
exit status of get, wait and start --wait:
  0    the run completed
  1    the run could not be read (key, network, unknown id) or a setting is wrong
  2    the command line is wrong
  3    the run is not finished (wait: timed out; get: still going)
  4    the run ended in error
  5    the run was cancelled
  130  interrupted (Ctrl-C)"""
TICK_S = 1.0  # the progress bar's redraw interval on a terminal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retab-mcp",
        description="MCP server for watching and triaging Retab workflow experiment runs.",
        parents=[_common_options(top_level=True)],
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
    parser.add_argument("--port", type=int, default=8000, help="port for http/sse (default 8000)")
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
    sub = parser.add_subparsers(
        dest="command", metavar="{demo,doctor,get,wait,list,results,metrics,triage,compare,start}"
    )
    sub.add_parser("demo", help="walk through what an agent sees, against the simulated API (no key)")
    sub.add_parser(
        "doctor",
        help="check the key, the base URL, the wait cap and writes; print the host config (exit 0 if a call works)",
        parents=[_common_options(top_level=False)],
    )
    common = _common_options(top_level=False)
    raw = argparse.RawDescriptionHelpFormatter
    get = sub.add_parser("get", help="show one run's summary", parents=[common], epilog=EXIT_CODES, formatter_class=raw)
    get.add_argument("run_id")
    wait = sub.add_parser(
        "wait",
        help="wait for a run to finish, with a progress bar",
        parents=[common],
        epilog=EXIT_CODES,
        formatter_class=raw,
    )
    wait.add_argument("run_id")
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds to wait at most (default 600)")
    listing = sub.add_parser(
        "list", help="list runs, newest first (exit 0 with a page, 1 on failure)", parents=[common]
    )
    listing.add_argument("--experiment-id", dest="experiment_id")
    listing.add_argument("--workflow-id", dest="workflow_id")
    listing.add_argument("--status", choices=KNOWN_STATUSES)
    listing.add_argument("--limit", type=int, default=10)
    listing.add_argument("--cursor")
    results = sub.add_parser("results", help="one row per document of a run", parents=[common])
    results.add_argument("run_id")
    results.add_argument("--status", choices=KNOWN_STATUSES)
    results.add_argument("--limit", type=int, default=20)
    results.add_argument("--cursor")
    metrics = sub.add_parser("metrics", help="a run's agreement scores", parents=[common])
    metrics.add_argument("run_id")
    metrics.add_argument("--view", choices=["summary", "by_document", "by_target", "votes"], default="summary")
    metrics.add_argument("--document-id", dest="document_id")
    metrics.add_argument("--target-path", dest="target_path")
    triage = sub.add_parser("triage", help="why a run ended as it did, in one report", parents=[common])
    triage.add_argument("run_id")
    compare = sub.add_parser(
        "compare",
        help="did a change help? compare two runs document by document (exit 0 with a verdict, 1 on failure)",
        parents=[common],
    )
    compare.add_argument(
        "run_ids",
        nargs="+",
        metavar="RUN",
        help="[BASE] CANDIDATE: the run before the change (omit it for the candidate's previous completed run "
        "on the same documents) and the run after it",
    )
    start = sub.add_parser(
        "start",
        help="start a run of an experiment (needs RETAB_MCP_ALLOW_WRITES=1); --wait waits for it",
        parents=[common],
        epilog=EXIT_CODES,
        formatter_class=raw,
    )
    start.add_argument("experiment_id")
    start.add_argument("--wait", action="store_true", help="then wait for the run, with a progress bar")
    start.add_argument("--timeout", type=float, default=600.0, help="with --wait: seconds at most (default 600)")
    return parser


def _given(args: argparse.Namespace, *names_: str) -> dict[str, object]:
    return {name: getattr(args, name) for name in names_ if getattr(args, name, None) is not None}


# Subcommands that call one read tool and print what it says (its structuredContent with --json).
READ_COMMANDS: dict[str, Callable[[argparse.Namespace], tuple[str, dict[str, object]]]] = {
    "list": lambda a: (names.LIST_RUNS, _given(a, "experiment_id", "workflow_id", "status", "limit", "cursor")),
    "results": lambda a: (names.LIST_RESULTS, _given(a, "run_id", "status", "limit", "cursor")),
    "metrics": lambda a: (names.GET_METRICS, _given(a, "run_id", "view", "document_id", "target_path")),
    "triage": lambda a: (names.TRIAGE, _given(a, "run_id")),
}


def _common_options(*, top_level: bool) -> argparse.ArgumentParser:
    """Options accepted before or after `get`/`wait`. Below the top level their defaults are suppressed,
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
        type=float,
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "compare" and len(args.run_ids) > 2:
        parser.error("compare takes [BASE] CANDIDATE: at most two run ids")
    secrets_in_env = ("RETAB_API_KEY", "RETAB_MCP_AUTH_TOKEN", "RETAB_MCP_PARTITION_SECRET")
    configure_logging(args.log_level, [os.environ.get(name) for name in secrets_in_env])
    if args.command == "demo":
        from ..demo import run_demo

        sys.exit(run_demo())
    try:
        settings = Settings.load(
            base_url=args.base_url, max_wait_s=args.max_wait_s, per_user_keys=getattr(args, "per_user_keys", None)
        )
    except SettingsError as error:
        sys.exit(f"retab-mcp: {error}")
    configure_call_log(settings.call_log, settings.secrets)
    for secret in settings.secrets:
        redact_in_logs(secret)  # a Redis password, too
    if settings.per_user_keys and (args.command is not None or args.transport == "stdio"):
        sys.exit(
            f"retab-mcp: per-user keys are for serving over HTTP or SSE, where each request carries its {KEY_HEADER}; "
            "add --transport http, or unset RETAB_MCP_PER_USER_KEYS for stdio and the commands."
        )
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

    def run_named(run_id: str) -> str:
        return str(sim.run_ids.get(run_id, run_id) if sim is not None else run_id)

    if args.command == "doctor":
        from ..doctor import run_doctor

        sys.exit(anyio.run(run_doctor, settings, transport, args.demo))
    if args.command in READ_COMMANDS:
        tool, arguments = READ_COMMANDS[args.command](args)
        if "run_id" in arguments:
            arguments["run_id"] = run_named(str(arguments["run_id"]))
        sys.exit(anyio.run(_tool, settings, transport, tool, arguments, args.json))
    if args.command in ("get", "wait", "compare", "start"):
        try:
            if args.command == "compare":
                *base, candidate = [run_named(run_id) for run_id in args.run_ids]
                arguments = {"candidate_run_id": candidate} | ({"base_run_id": base[0]} if base else {})
                sys.exit(anyio.run(_tool, settings, transport, names.COMPARE, arguments, args.json))
            if args.command == "start":
                experiment = str(args.experiment_id)
                if sim is not None:  # in demo mode, an experiment may be named as the scenario names it
                    experiment = {e.name: e.id for e in sim.world.experiments}.get(experiment, experiment)
                sys.exit(anyio.run(_start, settings, transport, experiment, args.wait, args.timeout, args.json))
            wait, timeout_s = args.command == "wait", getattr(args, "timeout", 0.0)
            sys.exit(anyio.run(_show, settings, transport, run_named(args.run_id), wait, timeout_s, args.json))
        except KeyboardInterrupt:
            print("\nretab-mcp: interrupted; the run goes on (this command only watched it).", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
    options = None
    if args.transport != "stdio":
        from ...transports.http import HttpOptions, ServingError, check_binding  # only HTTP needs these

        options = HttpOptions(args.transport, args.host, args.port, args.stateless, args.auth_handled_by_proxy)
        try:
            check_binding(options, settings)
        except ServingError as error:
            sys.exit(f"retab-mcp: {error}")
    anyio.run(_serve, settings, transport, options)


async def _serve(settings: Settings, transport: httpx2.AsyncBaseTransport | None, options: HttpOptions | None) -> None:
    """Serve until stdin closes (stdio) or SIGINT/SIGTERM arrives, then exit 0 without a traceback.

    On a signal, waits in progress end at once with the state they have. Over HTTP their answers still
    go out before the server stops; over stdio the host is going away, so the calls are simply cancelled.
    A second signal ends everything at once.
    """
    stop = anyio.Event()
    oauth: dict[str, Any] = {}
    if settings.oauth_issuer and settings.oauth_resource and options is not None:
        from ...transports.oauth import JwtVerifier, OAuthSettings

        resource_server = OAuthSettings(
            settings.oauth_issuer, settings.oauth_resource, settings.oauth_read_scope, settings.oauth_write_scope
        )
        oauth = {"auth": resource_server.auth_settings(), "token_verifier": JwtVerifier(resource_server)}
    server = build_server(settings, transport=transport, stop=stop, **oauth)
    async with anyio.create_task_group() as group:

        async def stop_on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    if stop.is_set() or options is None:
                        group.cancel_scope.cancel()
                        _exit_soon()
                    stop.set()

        group.start_soon(stop_on_signals)
        if options is None:
            await serve_stdio(server)
        else:
            from ...transports.http import serve_http

            await serve_http(server, options, settings, stop)
        group.cancel_scope.cancel()


def _exit_soon(grace_s: float = 0.5) -> None:
    """Exit 0 after `grace_s`, even if shutdown is stuck.

    When stdin is not a pipe, the SDK's transport reads it in a worker thread that no cancellation
    interrupts, so after a signal the task group could wait for a line that never comes. In-flight calls
    are cancelled within the grace; then the process leaves without waiting for that thread. (On pipes,
    the usual case, the reads are cancellable and the process ends before the grace is up.)
    """

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    timer = threading.Timer(grace_s, leave)
    timer.daemon = True
    timer.start()


async def _tool(
    settings: Settings,
    transport: httpx2.AsyncBaseTransport | None,
    tool: str,
    arguments: Mapping[str, object],
    as_json: bool,
) -> int:
    """Call one of the server's own tools in-process and print its text (or JSON): the command line says
    what an agent would be told. Exit 0 with a result, 1 with an error (on stderr)."""
    result = await _call(settings, transport, tool, arguments)
    text = _said(tool, result)
    if text is None:
        return EXIT_CALL_FAILED
    print(json.dumps(result.structured_content, indent=2) if as_json else text)
    return EXIT_COMPLETED


def _said(tool: str, result: CallToolResult) -> str | None:
    """The result's text; or None, when it is an error, said on stderr (the SDK's prefix left out: the
    command names the tool already)."""
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    if not result.is_error:
        return text
    print(f"retab-mcp: {text.removeprefix(f'Error executing tool {tool}: ')}", file=sys.stderr)
    return None


async def _call(
    settings: Settings, transport: httpx2.AsyncBaseTransport | None, tool: str, arguments: Mapping[str, object]
) -> CallToolResult:
    from mcp import Client

    async with Client(build_server(settings, transport=transport)) as client:
        return await client.call_tool(tool, dict(arguments))


async def _start(
    settings: Settings,
    transport: httpx2.AsyncBaseTransport | None,
    experiment_id: str,
    wait: bool,
    timeout_s: float,
    as_json: bool,
) -> int:
    """Start a run (the person typing the command, with writes allowed, is the consent), then wait."""
    if not settings.allow_writes:
        print(
            "retab-mcp: starting a run costs money, so it needs RETAB_MCP_ALLOW_WRITES=1 in the environment.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    result = await _call(settings, transport, names.START, {"experiment_id": experiment_id})
    text = _said(names.START, result)
    if text is None:
        return EXIT_CALL_FAILED
    data: dict[str, object] = result.structured_content or {}
    if not wait or not data.get("run_id"):
        print(json.dumps(data, indent=2) if as_json else text)
        return EXIT_COMPLETED if data.get("run_id") else EXIT_CALL_FAILED
    if not as_json:
        print(text.splitlines()[0])
    return await _show(settings, transport, str(data["run_id"]), True, timeout_s, as_json)


async def _show(
    settings: Settings,
    transport: httpx2.AsyncBaseTransport | None,
    run_id: str,
    wait: bool,
    timeout_s: float,
    as_json: bool = False,
) -> int:
    """Print a run's summary (after waiting for it, with `wait`); return the exit status for its state."""
    clock = RealClock()
    bar = ProgressBar()
    redact = Redactor(settings.secrets)
    try:
        async with RetabClient(settings, transport=transport) as client:
            # One read first, within the call deadline: a wrong id, key or URL is said at once rather
            # than after the whole wait.
            with call_deadline(settings.call_deadline_s):
                run = await client.get_run(run_id)
            if not wait or run.lifecycle.is_terminal:
                summary = summarize(run, clock.wall_at(clock.now()))
                shown = json.dumps(summary.structured(), indent=2) if as_json else summary.render()
                print(redact.text(shown))
                return _exit_status(run.status, finished=run.lifecycle.is_terminal)
            outcome = await _wait_with_bar(client, run_id, timeout_s, clock, bar, redact)
    except RetabError as error:
        bar.close()
        print(redact.text(f"retab-mcp: {explain(error, run_id)}"), file=sys.stderr)
        return EXIT_CALL_FAILED
    bar.close()
    result = wait_view(outcome, EXPERIMENT_KIND, clock.wall_at(clock.now()))
    if as_json:
        print(redact.text(json.dumps(result.structured(), indent=2)))
    elif outcome.timed_out:
        print(redact.text(result.render(next_step="Not finished: run the same command again to keep waiting.")))
    else:
        print(redact.text(result.render()))
    if outcome.timed_out:
        return EXIT_TIMED_OUT
    return _exit_status(outcome.run.status, finished=True)


async def _wait_with_bar(
    client: RetabClient, run_id: str, timeout_s: float, clock: RealClock, bar: ProgressBar, redact: Redactor
) -> WaitOutcome:
    """Wait for the run, redrawing `bar` on progress and every TICK_S; raises what the wait raised."""

    async def on_progress(progress: float, total: float | None, message: str) -> None:
        bar.update(progress, total, redact.text(message))

    async def tick() -> None:
        while True:
            await anyio.sleep(TICK_S)
            bar.tick()

    failure: RetabError | None = None
    async with anyio.create_task_group() as ticking:
        ticking.start_soon(tick)
        try:
            return await wait_for_finish(client, run_id, timeout_s=timeout_s, clock=clock, on_progress=on_progress)
        except RetabError as error:  # raised below, outside the task group, so not in an ExceptionGroup
            failure = error
        finally:
            ticking.cancel_scope.cancel()
    assert failure is not None
    raise failure


def _exit_status(status: str, *, finished: bool) -> int:
    return EXIT_BY_STATUS.get(status, EXIT_COMPLETED if finished else EXIT_TIMED_OUT)
