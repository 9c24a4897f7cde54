"""The `retab-mcp` command: the composition root.

    retab-mcp [--transport stdio|http|sse] [--host H] [--port P] [--demo]   serve (stdio by default)
    retab-mcp demo                                                         a walkthrough for a newcomer
    retab-mcp get RUN_ID [--demo]                                          one run's summary
    retab-mcp wait RUN_ID [--timeout S] [--demo]                           wait, with a progress bar

Logs go to stderr; over stdio, stdout carries JSON-RPC only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from . import __version__
from .client import RetabClient
from .clock import RealClock
from .config import Settings, SettingsError
from .console import ProgressBar
from .errors import RetabError
from .logs import configure_logging
from .server import build_server
from .stdio import serve_stdio
from .summaries import render, render_interim, summarize, summarize_wait
from .tool_errors import explain
from .waiting import wait_for_finish

if TYPE_CHECKING:
    import httpx2

    from .serving import HttpOptions
    from .simulator import SimulatedRetab

DEMO_KEY = "sk_demo_simulated"
DEMO_URL = "http://retab.simulated"
EXIT_TIMED_OUT = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retab-mcp",
        description="MCP server for watching and triaging Retab workflow experiment runs.",
        parents=[_common_options(top_level=True)],
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
        "--stateless",
        action="store_true",
        help="streamable HTTP without sessions (2025-era clients cannot cancel a running wait)",
    )
    sub = parser.add_subparsers(dest="command", metavar="{demo,get,wait}")
    sub.add_parser("demo", help="walk through what an agent sees, against the simulated API (no key)")
    common = _common_options(top_level=False)
    get = sub.add_parser("get", help="show one run's summary", parents=[common])
    get.add_argument("run_id")
    wait = sub.add_parser("wait", help="wait for a run to finish, with a progress bar", parents=[common])
    wait.add_argument("run_id")
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds to wait at most (default 600)")
    return parser


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
        help="cap on one wait_for_run call, seconds (env RETAB_MCP_MAX_WAIT_S, default 50)",
    )
    options.add_argument(
        "--log-level",
        default=default("WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    return options


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, [os.environ.get("RETAB_API_KEY"), os.environ.get("RETAB_MCP_AUTH_TOKEN")])
    if args.command == "demo":
        from .demo import run_demo

        sys.exit(run_demo())
    try:
        settings = Settings.load(base_url=args.base_url, max_wait_s=args.max_wait_s)
    except SettingsError as error:
        sys.exit(f"retab-mcp: {error}")
    sim: SimulatedRetab | None = None
    transport: httpx2.AsyncBaseTransport | None = None
    if args.demo:
        import httpx2

        from . import simulator  # the demo's API; a real server never loads it

        sim = simulator.SimulatedRetab(clock=RealClock(), demo=True)
        settings = settings.with_overrides(api_key=DEMO_KEY, base_url=DEMO_URL)
        transport = httpx2.ASGITransport(app=sim)
    if args.command in ("get", "wait"):
        run_id = str(sim.run_ids.get(args.run_id, args.run_id) if sim is not None else args.run_id)
        sys.exit(anyio.run(_show, settings, transport, run_id, args.command == "wait", getattr(args, "timeout", 0)))
    options = None
    if args.transport != "stdio":
        from .serving import HttpOptions, ServingError, check_binding  # only HTTP needs these

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
    server = build_server(settings, transport=transport, stop=stop)
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
            from .serving import serve_http

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


async def _show(
    settings: Settings, transport: httpx2.AsyncBaseTransport | None, run_id: str, wait: bool, timeout_s: float
) -> int:
    clock = RealClock()
    bar = ProgressBar()
    async with RetabClient(settings, transport=transport) as client:
        try:
            if not wait:
                run = await client.get_run(run_id)
                print(render(summarize(run, clock.wall_at(clock.now())), run))
                return 0

            async def on_progress(progress: float, total: float | None, message: str) -> None:
                bar.update(progress, total, message)

            outcome = await wait_for_finish(client, run_id, timeout_s=timeout_s, clock=clock, on_progress=on_progress)
        except RetabError as error:
            bar.close()
            print(f"retab-mcp: {explain(error, run_id)}", file=sys.stderr)
            return 1
    bar.close()
    assert outcome.run is not None
    now = clock.wall_at(clock.now())
    result = summarize_wait(
        outcome.run, now, timed_out=outcome.timed_out, waited_s=outcome.waited_s, warning=outcome.warning
    )
    if outcome.timed_out:
        print(render_interim(result, "Not finished: run the same command again to keep waiting."))
        return EXIT_TIMED_OUT
    print(render(result, outcome.run))
    return 0
