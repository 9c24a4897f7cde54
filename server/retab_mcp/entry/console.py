"""Output for a person at a terminal: a progress bar that redraws in place on a TTY, lines elsewhere.

On a TTY the bar shows the time waited and is redrawn every second (`tick`), even while no document
completes, and each redraw is cut to the terminal's width, read afresh each time: a line that wrapped
could not be erased by the carriage return, and would leave stale lines behind on a narrow terminal.
Elsewhere (a pipe, a log file) it writes one line per change and nothing per tick.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from ..views.text import duration_text


class ProgressBar:
    def __init__(
        self,
        stream: TextIO | None = None,
        width: int = 30,
        *,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._clock = clock
        self._columns = columns
        self._started = clock()
        self._state: tuple[float, float | None, str | None] | None = None
        self._drawn = False

    def update(self, progress: float, total: float | None, message: str | None) -> None:
        self._state = (progress, total, message)
        self._draw(changed=True)

    def tick(self) -> None:
        """Redraw with the time waited so far (a TTY only)."""
        if self.tty:
            self._draw(changed=False)

    def _draw(self, *, changed: bool) -> None:
        progress, total, message = self._state or (0.0, None, "waiting for the first answer")
        # The time waited comes first, so that a narrow terminal cuts the message, not the clock.
        waited = duration_text(self._clock() - self._started)
        limit = max(10, self._columns() - 1) if self.tty else 10_000
        line = f"{waited} {message or f'{progress:g}'}"
        if total:
            width = min(self.width, max(5, limit // 4))
            filled = round(width * min(progress / total, 1.0))
            line = f"{waited} [{'█' * filled}{'·' * (width - filled)}] {message or ''}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + (line if len(line) <= limit else line[: limit - 1] + "…"))
            self._drawn = True
        elif changed:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
