"""Operator logs on stderr: one line per event, no secrets.

Two filters sit on the root handlers. One replaces the API key and the HTTP auth token with a marker
wherever they would appear, so no record carries them, whatever a library puts in a message. The other
turns the SDK's traceback for a client's mistake (a prompt name that does not exist) into one line: a
traceback there says nothing to an operator and reads like a crash.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"
CLIENT_MISTAKES = ("Unknown prompt",)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            if any(secret in formatted for secret in self._secrets):
                text += "\n" + formatted
                record.exc_info = None
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        record.msg, record.args = text, ()
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
