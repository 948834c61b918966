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


def window(fetch: Callable[[int, int], Any], offset: int = 0, limit: int | None = None,
           page_size: int = PAGE) -> tuple[list[dict[str, Any]], int | None]:
    """Items ``offset`` .. ``offset + limit`` (to the end when ``limit`` is None), fetched page by page
    so that a server capping its page size still yields them all; and the server's ``total_count``."""
    if limit == 0:
        page = fetch(offset, 0)
        return [], _total(page)
    items: list[dict[str, Any]] = []
    total: int | None = None
    while limit is None or len(items) < limit:
        want = page_size if limit is None else min(page_size, limit - len(items))
        page = fetch(offset + len(items), want)
        got = items_of(page)
        total = _total(page) if _total(page) is not None else total
        items += got
        if not got or total is None or offset + len(items) >= total:
            break
    return items, total


def _total(page: Any) -> int | None:
    value = page.get("total_count") if isinstance(page, dict) else None
    return int(value) if value is not None else None


def rest_note(offset: int, shown: int, total: int | None, noun: str) -> str | None:
    """"Showing 1-50 of 54 ..." when the listing stopped before the end, else None."""
    if total is None:
        return None
    if not shown and offset and offset >= total:
        return f"There are only {total} {noun}; --offset {offset} skips them all"
    if offset + shown >= total:
        return None
    return f"Showing {noun} {offset + 1}-{offset + shown} of {total}"
