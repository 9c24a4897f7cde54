"""What every gathering shares: an optional read that becomes a warning, and reading every page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..api.errors import RetabError
from ..api.models import APIModel, Page
from ..base.text import clip

T = TypeVar("T")
WARNING_MAX = 200
ItemT = TypeVar("ItemT", bound=APIModel)


async def optional(what: str, request: Awaitable[T], warnings: list[str]) -> T | None:
    """The answer to `request`, or None with a warning saying `what` could not be read and why."""
    try:
        return await request
    except RetabError as error:
        warnings.append(clip(f"{what} not read: {error}", WARNING_MAX))
        return None


async def every_page(list_page: Callable[..., Awaitable[Page[ItemT]]], max_items: int, **filters: Any) -> list[ItemT]:
    """Items of every page of a keyset-paged list, following its cursor, up to `max_items`."""
    items: list[ItemT] = []
    after: str | None = None
    while len(items) < max_items:
        page = await list_page(**filters, after=after)
        items.extend(page.data)
        after = page.next_cursor
        if not after or not page.data:
            break
    return items[:max_items]
