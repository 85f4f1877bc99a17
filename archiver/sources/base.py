"""The CDR-source boundary: all the rest of the program sees of a provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from archiver.models import CallRecord, Provider


@dataclass(slots=True)
class Page:
    """One page of a listing, parsed.

    ``records`` holds the good CDRs of the window, each once per listing;
    ``skipped`` the reasons for records that could not be parsed (a bad record
    never costs the good ones on the same page).
    """

    records: list[CallRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0  # records already seen earlier in this listing
    outside: int = 0  # records the API returned outside [start, end)


class CdrSource(Protocol):
    """A provider's CDR API."""

    @property
    def provider(self) -> Provider:
        """Which kind of source this is."""

    @property
    def granularity(self) -> timedelta:
        """The finest time step the API filters by (window edges align to it)."""

    def list_window(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        """Every CDR whose start time is in [start, end), page by page."""

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        """The API's count of CDRs whose start time is in [start, end), asked with
        the smallest page (one request); None when the API gives no usable count.

        ``start`` and ``end`` fall on the source's granularity.
        """

    async def lookup(self, ident: str) -> CallRecord | None:
        """One CDR by cdr id or sip_call_id (fresh recording URL), or None if unknown."""

    async def probe(self) -> str:
        """One small authenticated request; a line saying what was found."""
