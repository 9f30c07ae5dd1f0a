"""Pagination styles for ``get_all``: how to ask for the page after this one.

A paginator sets up the first request (``first``) and, from each page, works out the next
request (``next``) or says there is none. Paths into a page body are dotted keys
(``"links.next"``, ``"meta.cursor"``; a number picks a list item).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from statefn.adaptor import AdaptorError

__all__ = [
    "NextCursor",
    "NextLink",
    "NextPage",
    "Page",
    "PageNumber",
    "PageOffset",
    "Paginator",
    "lookup",
    "next_cursor",
    "next_link",
    "page_number",
    "page_offset",
]


@dataclass(frozen=True)
class Page:
    """One page as a paginator sees it."""

    url: str
    query: dict[str, Any]
    body: Any
    links: dict[str, str]
    items: list[Any] | None


@dataclass(frozen=True)
class NextPage:
    """The request for the next page: a URL (None: the same path) and its query."""

    url: str | None
    query: dict[str, Any]


class Paginator:
    """A pagination style. Subclasses say how to move from one page to the next."""

    needs_items = False

    def first(self, query: dict[str, Any]) -> dict[str, Any]:
        """The query of the first request."""
        return query

    def next(self, page: Page) -> NextPage | None:
        """The request for the page after ``page``, or None when it was the last."""
        raise NotImplementedError


def lookup(body: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``body``, or None when any step is missing."""
    value = body
    for key in path.split("."):
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


@dataclass(frozen=True)
class NextLink(Paginator):
    """Follow a next-page URL from a body field, or from the ``Link`` header."""

    field: str | None = None

    def next(self, page: Page) -> NextPage | None:
        link = page.links.get("next") if self.field is None else lookup(page.body, self.field)
        if not link:
            return None
        if not isinstance(link, str):
            raise AdaptorError(
                f"The next link at {self.field!r} is not a URL: {link!r}",
                fix="Point next_link at the body field holding the next page's URL.",
            )
        # A relative link is relative to the page it came from; it carries its own query.
        return NextPage(url=str(httpx.URL(page.url).join(link)), query={})


@dataclass(frozen=True)
class PageNumber(Paginator):
    """Ask for page 1, 2, 3, ... until a page comes back empty (or short of ``size``)."""

    param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = None
    needs_items = True

    def first(self, query: dict[str, Any]) -> dict[str, Any]:
        first = {**query, self.param: self.start}
        if self.size_param and self.size is not None:
            first[self.size_param] = self.size
        return first

    def next(self, page: Page) -> NextPage | None:
        if not page.items or (self.size is not None and len(page.items) < self.size):
            return None
        return NextPage(url=None, query={**page.query, self.param: page.query[self.param] + 1})


@dataclass(frozen=True)
class PageOffset(Paginator):
    """Ask for ``limit`` items from offset 0, ``limit``, 2 * ``limit``, ... until a short page."""

    param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100
    start: int = 0
    needs_items = True

    def first(self, query: dict[str, Any]) -> dict[str, Any]:
        return {**query, self.param: self.start, self.limit_param: self.limit}

    def next(self, page: Page) -> NextPage | None:
        if not page.items or len(page.items) < self.limit:
            return None
        offset = page.query[self.param] + len(page.items)
        return NextPage(url=None, query={**page.query, self.param: offset})


@dataclass(frozen=True)
class NextCursor(Paginator):
    """Send the cursor found at ``field`` of each page as query ``param``, until there is none."""

    field: str
    param: str = "cursor"

    def next(self, page: Page) -> NextPage | None:
        cursor = lookup(page.body, self.field)
        if cursor is None or cursor == "":
            return None
        return NextPage(url=None, query={**page.query, self.param: cursor})


def next_link(field: str | None = None) -> NextLink:
    """Paginate by next-page URLs: from the body field ``field`` (dotted path), else the ``Link`` header.

    Example: ``get_all("/patients", paginate=next_link("links.next"), items="data")``
    """
    return NextLink(field)


def page_number(
    param: str = "page", *, start: int = 1, size_param: str | None = None, size: int | None = None
) -> PageNumber:
    """Paginate by page number in query ``param`` from ``start``; stop at an empty or short page.

    ``size_param`` and ``size`` send a page size too (and a page with fewer items is the last).
    Example: ``get_all("/rows", paginate=page_number("page", size_param="per_page", size=50))``
    """
    return PageNumber(param, start, size_param, size)


def page_offset(
    param: str = "offset", *, limit_param: str = "limit", limit: int = 100
) -> PageOffset:
    """Paginate by offset and limit query parameters; stop at a page with fewer than ``limit`` items.

    Example: ``get_all("/rows", paginate=page_offset(limit=200), items="results")``
    """
    return PageOffset(param, limit_param, limit)


def next_cursor(field: str, param: str = "cursor") -> NextCursor:
    """Paginate by cursor: send the body's ``field`` (dotted path) as query ``param``.

    Example: ``get_all("/events", paginate=next_cursor("meta.next_cursor"), items="events")``
    """
    return NextCursor(field, param)
