"""Output for a person at a terminal: a progress bar that redraws in place on a TTY, lines elsewhere."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._drawn = False

    def update(self, progress: float, total: float | None, message: str | None) -> None:
        if total:
            filled = round(self.width * min(progress / total, 1.0))
            bar = "█" * filled + "·" * (self.width - filled)
            line = f"[{bar}] {message or ''}"
        else:
            line = message or f"{progress:g}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
