"""Durations and times as a model reads them, and the one `clip` (retab_mcp/text.py), for every view."""

from __future__ import annotations

from datetime import datetime

from ..base.text import clip

__all__ = ["clip", "duration_text", "iso_seconds"]


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def iso_seconds(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None
