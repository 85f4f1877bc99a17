"""Paginators: tiny state machines fed parsed pages, with no I/O.

A page that repeats the previous one raises instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Sequence

from archiver.errors import PagingError


class OffsetPaginator:
    """offset/limit paging (cdr_v2), whether the server echoes the offset
    (pagination) or returns the next one (scroll).

    The next offset is always ours plus the records received, so both styles
    agree. The server's own page size wins over ours when it differs (a scroll
    server may ignore ``limit``), so a short page is judged against it.

    ``total`` ends the listing only once that many distinct records have
    arrived: when rows shift between requests (the same CDR on two pages), the
    offset reaches ``total`` before the last rows were seen, and the listing
    goes on until a short page instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.offset = 0
        self.pages = 0
        self.has_more = True
        self._previous: tuple[str, ...] | None = None
        self._distinct: set[str] = set()

    def params(self) -> dict[str, int]:
        """Query parameters for the next request."""
        return {"limit": self.limit, "offset": self.offset}

    def advance(
        self, ids: Sequence[str], *, total: int | None = None, server_limit: int | None = None
    ) -> None:
        """Take in one page's record ids (in order) and the server's paging fields."""
        key = tuple(ids)
        if key and key == self._previous:
            raise PagingError(f"the page at offset {self.offset} repeats the previous page")
        self._previous = key
        self.pages += 1
        page_limit = server_limit if server_limit and server_limit > 0 else self.limit
        self.offset += len(ids)
        self._distinct.update(ids)
        reached_total = total is not None and self.offset >= total and len(self._distinct) >= total
        if not ids or len(ids) < page_limit or reached_total:
            self.has_more = False


class PageNumberPaginator:
    """page/limit paging with a ``paging`` object (epacific)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.page = 1
        self.has_more = True
        self._previous: tuple[str, ...] | None = None

    def params(self) -> dict[str, int]:
        """Body fields for the next request."""
        return {"page": self.page, "limit": self.limit}

    def advance(
        self,
        ids: Sequence[str],
        *,
        page_count: int | None = None,
        next_page: bool | None = None,
        server_limit: int | None = None,
    ) -> None:
        """Take in one page's record ids and the server's ``paging`` fields."""
        key = tuple(ids)
        if key and key == self._previous:
            raise PagingError(f"page {self.page} repeats the previous page")
        self._previous = key
        page_limit = server_limit if server_limit and server_limit > 0 else self.limit
        if not ids:
            self.has_more = False
        elif next_page is not None:
            self.has_more = next_page
        elif page_count is not None:
            self.has_more = self.page < page_count
        else:
            self.has_more = len(ids) >= page_limit
        if page_count is not None and self.page >= page_count:
            self.has_more = False
        self.page += 1
