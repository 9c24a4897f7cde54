"""Serving: over stdio until stdin closes, or over HTTP/SSE until SIGINT/SIGTERM, then exit 0 without a
traceback. A port that cannot be bound is one line and exit 1."""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio

from ...tools.server import build_server
from ...transports.stdio import serve_stdio
from .parser import EXIT_CALL_FAILED, EXIT_COMPLETED

if TYPE_CHECKING:
    import httpx2

    from ...base.config import Settings
    from ...transports.http import HttpOptions


def serve(settings: Settings, transport: httpx2.AsyncBaseTransport | None, options: HttpOptions | None) -> int:
    failed: list[OSError] = []
    try:
        anyio.run(_serve, settings, transport, options)
    except* OSError as failures:  # only binding raises it here: the port is taken, or not ours to bind
        failed.extend(error for error in failures.exceptions if isinstance(error, OSError))
    if not failed:
        return EXIT_COMPLETED
    assert options is not None
    error = failed[0]
    if error.errno == errno.EADDRINUSE:
        print(
            f"retab-mcp: port {options.port} on {options.host} is already in use: choose another with --port "
            "(0 lets the system pick a free one and says which).",
            file=sys.stderr,
        )
    else:
        print(f"retab-mcp: cannot serve on {options.host}:{options.port}: {error.strerror}.", file=sys.stderr)
    return EXIT_CALL_FAILED


async def _serve(settings: Settings, transport: httpx2.AsyncBaseTransport | None, options: HttpOptions | None) -> None:
    """Serve until stdin closes (stdio) or SIGINT/SIGTERM arrives.

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
    server = build_server(settings, transport=transport, stop=stop, lazy_engine=options is None, **oauth)
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
