"""Clipping text that comes from outside (the API, a peer) before it is shown: one rule, everywhere."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
