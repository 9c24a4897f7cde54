"""Operator logs on stderr: one line per event, no secrets.

Three filters sit on the root handlers. One passes every record through the redaction of `redaction.py`,
so no record carries the API key or the HTTP auth token, whatever a library puts in a message. Another
turns the SDK's traceback for a client's mistake (a prompt name that does not exist) into one line: a
traceback there says nothing to an operator and reads like a crash. A third does the same, rate-limited,
for what an HTTP peer sends wrong.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

from .redaction import Redactor

CLIENT_MISTAKES = ("Unknown prompt",)

# Secrets learnt while serving (with per-user keys, each caller's key, while its partition is open): redacted
# from every record too. One redactor for all of them, whose cost does not grow with their number.
_learnt = Redactor()


def redact_in_logs(secret: str) -> None:
    """Add a secret to what no log record may carry, until it is forgotten."""
    _learnt.add(secret)


def forget_in_logs(secret: str) -> None:
    """The secret is no longer in use (its caller's partition closed): stop looking for it."""
    _learnt.forget(secret)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._redact and not _learnt:
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            if _learnt.text(self._redact.text(formatted)) != formatted:
                text += "\n" + formatted
                record.exc_info = None
        record.msg, record.args = _learnt.text(self._redact.text(text)), ()
        return True


class PeerMistakesInOneLine(logging.Filter):
    """What an HTTP peer sends wrong (a post that is not JSON-RPC, an unknown or 10 KB session id) is
    logged by the SDK's SSE transport with a traceback, or with the peer's text in full. Here it becomes
    one short WARNING line, the peer's text cut and escaped, at most one a `every_s` for each kind: the
    text and the rate are an attacker's."""

    LOGGERS = ("mcp.server.sse", "uvicorn.error", "asyncio", "retab_mcp.transports.connections")
    KINDS = (
        "Failed to parse message",
        "Received invalid session ID",
        "Could not find session for ID",
        "Received request without session_id",
        "Rejecting message for session",
        "Invalid HTTP request received",
        "socket.accept() out of system resource",
        "Exceeded concurrency limit",
    )
    # This server's own lines about connections: their text is ours, shown as it is, at the same rate.
    OWN_KINDS = ("Connection cap reached", "Request not read whole")
    SHOWN_MAX = 60

    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.LOGGERS):
            return True
        text = record.getMessage()
        kind = next((k for k in (*self.KINDS, *self.OWN_KINDS) if text.startswith(k)), None)
        if kind is None:
            return True
        now = self._clock()
        if now - self._last.get(kind, -self._every_s) < self._every_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        rest = text[len(kind) :].lstrip(": ")
        if kind in self.OWN_KINDS:
            shown = text[len(kind) :]
        else:
            shown = f": {rest[: self.SHOWN_MAX] + ('…' if len(rest) > self.SHOWN_MAX else '')!a}" if rest else ""
        suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last such line)" if suppressed else ""
        record.msg, record.args, record.exc_info, record.exc_text = f"{kind}{shown}{more}", (), None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class OneLineForClientMistakes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValueError) and str(error).startswith(CLIENT_MISTAKES):
            record.msg, record.args, record.exc_info = f"{record.getMessage()}: {error}", (), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(level: str, secrets: Iterable[str | None]) -> None:
    """Log to stderr at `level`, through both filters (stdout belongs to JSON-RPC over stdio)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OneLineForClientMistakes())
    handler.addFilter(PeerMistakesInOneLine())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def configure_call_log(enabled: bool, secrets: Iterable[str | None]) -> None:
    """With `enabled`, one JSON object per line on stderr for every tool call (the logger
    `retab_mcp.calls`), through the same redaction; otherwise those records are not made."""
    calls = logging.getLogger("retab_mcp.calls")
    calls.propagate = False
    calls.handlers.clear()
    if not enabled:
        calls.setLevel(logging.WARNING)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    calls.addHandler(handler)
    calls.setLevel(logging.INFO)
