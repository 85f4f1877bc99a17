"""What a reconcile reports: its kinds of finding, a finding, a day's totals, the report.

The report of a month may name every call of it (a month never archived):
its findings and the calls ``--fix`` would archive are therefore
:class:`Rows`, read again from the reconcile's scratch tables each time they
are read (in order), never held as a list (:mod:`archiver.retrieval.reconcile`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar, overload

from archiver.models import CallRecord

Identity = tuple[str, str]  # (provider, cdr_id): what makes a call unique

T = TypeVar("T")


class Kind(StrEnum):
    """What one reconcile line reports."""

    MISSING = "MISSING"  # a CDR with a recording URL and no manifest line
    FAILED = "FAILED"  # missing, and the state says it failed permanently (with why)
    FIXED = "FIXED"  # was missing; archived by this reconcile's --fix
    UNKNOWN_AT_SOURCE = "UNKNOWN-AT-SOURCE"  # archived, no longer listed (informational)
    UNREADABLE = "UNREADABLE"  # a CDR the provider sent that cannot be parsed


# Kinds that leave the range unaccounted for: the reconcile exits 5 on any of them.
# An unreadable CDR may carry a recording, so it cannot be signed off as complete.
OPEN_KINDS = frozenset({Kind.MISSING, Kind.FAILED, Kind.UNREADABLE})


@dataclass(frozen=True, slots=True)
class ArchivedRef:
    """What the comparison needs of one manifest line (a
    :class:`~archiver.manifest.entry.ManifestEntry`): three fields, not the whole
    line."""

    sip_call_id: str
    started_at: datetime | None
    manifest_key: str | None


@dataclass(frozen=True, slots=True)
class Finding:
    """One reported call (or unreadable record)."""

    kind: Kind
    call_started_at: datetime | None
    cdr_id: str
    sip_call_id: str
    detail: str = ""
    day: date | None = None  # the call's local date in the source's zone

    def line(self) -> str:
        """The table line: kind, call time, ids, detail, on one line whatever the ids hold."""
        started = self.call_started_at.isoformat() if self.call_started_at else "-"
        ids = f"cdr_id={printable(self.cdr_id)} sip_call_id={printable(self.sip_call_id)}"
        text = f"{self.kind.value:<17} {started}  {ids}"
        return f"{text}  {printable(self.detail)}" if self.detail else text


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (a line break as ``\\n``).

    The ids come from the provider: one holding a line break must not be able
    to add a line (a forged ``COMPLETE``) to the report an auditor signs.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(slots=True)
class DayTotals:
    """One local day of the range."""

    day: date
    cdrs: int = 0
    with_recording: int = 0
    archived: int = 0
    missing: int = 0


class Rows(Sequence[T]):
    """A sequence read again, in the same order, each time it is iterated.

    ``read`` opens a fresh reading (a query over the scratch tables); ``length``
    is known in advance. Indexing reads up to the item: meant for tests and
    small reports, not for walking a month by index.
    """

    def __init__(self, read: Callable[[], Iterator[T]], length: int) -> None:
        self._read = read
        self._length = length

    def __iter__(self) -> Iterator[T]:
        return self._read()

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError(index)
        return next(itertools.islice(self._read(), position, None))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rows({self._length} item(s))"


@dataclass
class Report:
    """The outcome of one reconcile.

    ``findings`` in report order (by call time, id, kind; the unreadable CDRs
    last); ``to_fix`` the missing calls ``--fix`` archives, in listing order;
    ``counts`` the findings per kind (when not given, counted from ``findings``).
    """

    provider: str
    since: datetime
    until: datetime
    findings: Sequence[Finding]
    days: list[DayTotals]
    bad_manifest_lines: int = 0
    fixed: int = 0
    to_fix: Sequence[CallRecord] = field(default_factory=list, repr=False)
    counts: Mapping[Kind, int] | None = field(default=None, repr=False)

    def count(self, *kinds: Kind) -> int:
        """How many findings are of these kinds."""
        if self.counts is not None:
            return sum(self.counts.get(kind, 0) for kind in set(kinds))
        return sum(1 for f in self.findings if f.kind in kinds)

    @property
    def complete(self) -> bool:
        """Every CDR with a recording is archived and every CDR could be read."""
        return not self.count(*OPEN_KINDS)

    def totals(self) -> dict[str, int]:
        """The range's totals (the audit record's details)."""
        return {
            "cdrs": sum(d.cdrs for d in self.days),
            "with_recording": sum(d.with_recording for d in self.days),
            "archived": sum(d.archived for d in self.days),
            "missing": sum(d.missing for d in self.days),
            "failed": self.count(Kind.FAILED),
            "fixed": self.count(Kind.FIXED),
            "unknown_at_source": self.count(Kind.UNKNOWN_AT_SOURCE),
            "unreadable_cdrs": self.count(Kind.UNREADABLE),
            "unreadable_manifest_lines": self.bad_manifest_lines,
        }


def finding_json(f: Finding) -> dict[str, Any]:
    """One finding as the JSON format writes it."""
    return {
        "kind": f.kind.value,
        "call_started_at": f.call_started_at.isoformat() if f.call_started_at else None,
        "cdr_id": f.cdr_id,
        "sip_call_id": f.sip_call_id,
        "detail": f.detail,
    }
