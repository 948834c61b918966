"""Walking `{total_count, items}` pages, the list shape of every API collection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

PAGE = 100


def items_of(page: Any) -> list[dict[str, Any]]:
    return list(page.get("items", [])) if isinstance(page, dict) else list(page or [])


def all_items(fetch: Callable[[int, int], Any], page_size: int = PAGE) -> Iterator[dict[str, Any]]:
    """Call ``fetch(offset, limit)`` until ``total_count`` items (or an empty page) came back."""
    offset = 0
    while True:
        page = fetch(offset, page_size)
        items = items_of(page)
        yield from items
        offset += len(items)
        total = page.get("total_count") if isinstance(page, dict) else None
        if not items or total is None or offset >= int(total):
            return
