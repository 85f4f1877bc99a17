"""Paginators: tiny state machines fed parsed pages, with no I/O.

Every listing is bounded, whatever the server says: a page that repeats any
earlier one (A, B, A, B as well as A, A), more rows in a page than
``max_rows``, more pages than ``max_pages`` (a ``total`` that keeps growing
with fresh ids, a ``next_page: true`` for ever), or a listing older than
``deadline`` seconds raises :class:`ListingLimitError` naming the bound,
instead of looping or flooding the state.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archiver.errors import ListingLimitError
from archiver.failures import ListingLimit

if TYPE_CHECKING:
    from archiver.settings import SourceSettings


@dataclass(frozen=True)
class ListingBounds:
    """The bounds of one window's listing (ARCHIVER_SOURCE__MAX_ROWS/MAX_PAGES/LIST_DEADLINE)."""

    max_rows: int = 10_000
    max_pages: int = 10_000
    deadline: float = 1800.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def of(cls, settings: SourceSettings) -> ListingBounds:
        """The bounds the source settings ask for."""
        return cls(
            max_rows=settings.max_rows,
            max_pages=settings.max_pages,
            deadline=settings.list_deadline,
        )


class _Bounded:
    """What both paginators share: the bounds, and the pages seen (by digest)."""

    def __init__(self, bounds: ListingBounds) -> None:
        self.bounds = bounds
        self.pages = 0
        self._started = bounds.clock()
        self._seen_pages: set[bytes] = set()

    def _check(self, where: str, ids: Sequence[str], rows: int | None) -> None:
        b = self.bounds
        count = len(ids) if rows is None else rows
        if count > b.max_rows:
            raise ListingLimitError(
                ListingLimit.ROWS,
                f"{where} has {count} rows, more than ARCHIVER_SOURCE__MAX_ROWS ({b.max_rows})",
            )
        if ids:
            digest = hashlib.sha256("\x00".join(ids).encode("utf-8", "surrogatepass")).digest()
            if digest in self._seen_pages:
                raise ListingLimitError(
                    ListingLimit.REPEAT, f"{where} repeats the previous page or an earlier one"
                )
            self._seen_pages.add(digest)
        self.pages += 1
        if self.pages > b.max_pages:
            raise ListingLimitError(
                ListingLimit.PAGES,
                f"more than ARCHIVER_SOURCE__MAX_PAGES ({b.max_pages}) pages in one window: "
                "the provider keeps paging",
            )
        elapsed = b.clock() - self._started
        if elapsed > b.deadline:
            raise ListingLimitError(
                ListingLimit.DEADLINE,
                f"listing one window took {elapsed:.0f}s, more than "
                f"ARCHIVER_SOURCE__LIST_DEADLINE ({b.deadline:g}s)",
            )


class OffsetPaginator(_Bounded):
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

    def __init__(self, limit: int, bounds: ListingBounds | None = None) -> None:
        super().__init__(bounds or ListingBounds())
        self.limit = limit
        self.offset = 0
        self.has_more = True
        self._distinct: set[str] = set()

    def params(self) -> dict[str, int]:
        """Query parameters for the next request."""
        return {"limit": self.limit, "offset": self.offset}

    def advance(
        self,
        ids: Sequence[str],
        *,
        total: int | None = None,
        server_limit: int | None = None,
        rows: int | None = None,
    ) -> None:
        """Take in one page's record ids (in order), the server's paging fields and
        the page's row count (``rows``, when some rows had no usable id)."""
        self._check(f"the page at offset {self.offset}", ids, rows)
        page_limit = server_limit if server_limit and server_limit > 0 else self.limit
        self.offset += len(ids)
        self._distinct.update(ids)
        reached_total = total is not None and self.offset >= total and len(self._distinct) >= total
        if not ids or len(ids) < page_limit or reached_total:
            self.has_more = False


class PageNumberPaginator(_Bounded):
    """page/limit paging with a ``paging`` object (epacific)."""

    def __init__(self, limit: int, bounds: ListingBounds | None = None) -> None:
        super().__init__(bounds or ListingBounds())
        self.limit = limit
        self.page = 1
        self.has_more = True

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
        rows: int | None = None,
    ) -> None:
        """Take in one page's record ids and the server's ``paging`` fields."""
        self._check(f"page {self.page}", ids, rows)
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
