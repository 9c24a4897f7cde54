"""Operator logs on stderr: one line per event, no secrets.

Two filters sit on the root handlers. One passes every record through the redaction of `redaction.py`,
so no record carries the API key or the HTTP auth token, whatever a library puts in a message. The other
turns the SDK's traceback for a client's mistake (a prompt name that does not exist) into one line: a
traceback there says nothing to an operator and reads like a crash.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from .redaction import Redactor

CLIENT_MISTAKES = ("Unknown prompt",)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._redact:
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            if self._redact.text(formatted) != formatted:
                text += "\n" + formatted
                record.exc_info = None
        record.msg, record.args = self._redact.text(text), ()
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
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
