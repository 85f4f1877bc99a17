"""Duplicate call lines: found by ``verify``, repaired by ``archiver dedupe``.

A call is (provider, cdr id), the key ``reconcile`` uses. Every call line read
is remembered by that key with where it is (manifest object, line number); a
second line of a call is a DUPLICATE unless a supersede record
(:mod:`archiver.manifest.supersede`) says it is superseded by the other one.
A record counts only when its object is the one its chain link records and
it names two lines of the same call: a record naming anything else supersedes
nothing (and ``verify`` says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime

from archiver.manifest.chain import Link
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import read_objects
from archiver.manifest.rollup_read import read_manifests
from archiver.manifest.supersede import (
    SUPERSEDE_PREFIX,
    Location,
    Supersession,
    parse_records,
    write_records,
)
from archiver.retrieval.link_table import in_key_order
from archiver.retrieval.problems import Problem, ProblemKind, records_against_link
from archiver.storage.base import ObjectStore
from archiver.storage.layout import MANIFEST_PREFIX

Identity = tuple[str, str]


def where(location: Location) -> str:
    """``manifests/... line N``: how a report names a line (pure)."""
    return f"{location[0]} line {location[1]}"


@dataclass
class Records:
    """The supersede records found, and what is wrong with their objects."""

    supersessions: list[Supersession] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    objects: int = 0

    def superseded(self) -> dict[Location, Supersession]:
        """Each superseded line's record (the first, if several name it)."""
        found: dict[Location, Supersession] = {}
        for record in self.supersessions:
            found.setdefault(record.superseded, record)
        return found


async def read_records(store: ObjectStore, links: Mapping[str, Link] | None = None) -> Records:
    """Every supersede record in the storage (one listing, one read per object).

    With ``links`` (a checked chain: manifest key -> link), a record object
    counts only when it is the one its link records; each other one is a
    problem and its records are left out. Without, every readable record counts
    (``search`` and ``dedupe``, which prove nothing).
    """
    found = Records()
    keys = [obj.key async for obj in store.list(SUPERSEDE_PREFIX)]
    seen: set[str] = set()
    async for key, content in read_objects(store, keys):
        if content is None:
            continue
        seen.add(key)
        found.objects += 1
        if links is not None:
            problem = _against_link(key, content, links.get(key))
            if problem is not None:
                found.problems.append(problem)
                continue
        records, bad = parse_records(key, content)
        found.supersessions += records
        found.problems += [Problem(ProblemKind.BAD_LINE, b, "not a supersede record") for b in bad]
    for key, link in in_key_order({} if links is None else links, SUPERSEDE_PREFIX):
        if key not in seen:
            found.problems.append(
                Problem(
                    ProblemKind.MANIFEST_MISSING,
                    key,
                    f"no such object; {link.lines} supersede record(s) recorded by {link.key} "
                    "are not readable",
                )
            )
    return found


def _against_link(key: str, content: bytes, link: Link | None) -> Problem | None:
    return records_against_link(key, content, link, "supersede record", "records")


@dataclass
class CallLines:
    """The call lines read so far, by call: the first line of each, and every further one."""

    # The first line read of each call (the same entry the index cross-check keeps).
    first: dict[Identity, tuple[Location, ManifestEntry]] = field(default_factory=dict)
    further: list[tuple[Identity, Location, ManifestEntry]] = field(default_factory=list)

    def add(self, call: ManifestEntry, location: Location) -> None:
        """Remember one call line."""
        first = self.first.setdefault(call.identity, (location, call))
        if first[0] != location:
            self.further.append((call.identity, location, call))

    def duplicates(
        self, records: Iterable[Supersession], *, whole: bool
    ) -> tuple[list[Problem], int]:
        """DUPLICATE problems for each line of a call beyond its one standing line (the
        earliest archived, as dedupe keeps it), and how many lines records supersede.
        ``whole``: every line was read, so a record naming no duplicate read is a problem
        too."""
        lines: dict[Identity, list[Location]] = {}
        entries: dict[Location, ManifestEntry] = {}
        for identity, location, entry in self.further:
            first, first_entry = self.first[identity]
            lines.setdefault(identity, [first]).append(location)
            entries[first] = first_entry
            entries[location] = entry
        for held in lines.values():
            # Read order is arrival order: the report names lines in a stable one.
            held.sort(key=lambda loc: _order(entries[loc], loc))
        applied: set[Location] = set()
        problems: list[Problem] = []
        for record in records:
            held = lines.get(record.identity, [])
            pair = record.kept != record.superseded
            if pair and record.kept in held and record.superseded in held:
                applied.add(record.superseded)
            elif whole:
                problems.append(
                    Problem(
                        ProblemKind.SUPERSEDE,
                        f"{record.record_key}",
                        f"a record of {record.provider} cdr {record.cdr_id} names "
                        f"{where(record.superseded)} as superseded by {where(record.kept)}, "
                        "which are not two call lines of that call: it supersedes nothing",
                    )
                )
        superseded = 0
        for identity, held in sorted(lines.items()):
            standing = [loc for loc in held if loc not in applied]
            superseded += len(held) - len(standing)
            if not standing:
                # Every line superseded (records in a cycle): the first one stands.
                standing = [held[0]]
            for location in standing[1:]:
                problems.append(
                    Problem(
                        ProblemKind.DUPLICATE,
                        where(location),
                        f"a second call line of {identity[0]} cdr {identity[1]}; the first is "
                        f"{where(standing[0])} (archiver dedupe records which one stands)",
                        entries.get(location),
                    )
                )
        return problems, superseded


def _order(entry: ManifestEntry, location: Location) -> tuple[bool, float, Location]:
    """Earliest archived first, then by manifest key and line; no readable archived_at last."""
    moment = entry.archived_at
    return (moment is None, moment.timestamp() if moment else 0.0, location)


@dataclass(frozen=True, slots=True)
class Line:
    """What a dedupe needs of one call line: where it is, when it was archived, its call."""

    location: Location
    archived: float | None  # POSIX time of archived_at; None when the line has none readable
    sip_call_id: str

    @classmethod
    def of(cls, entry: ManifestEntry, location: Location) -> Line:
        """The line ``entry`` read at ``location``."""
        moment = entry.archived_at
        return cls(location, None if moment is None else moment.timestamp(), entry.sip_call_id)


def plan_dedupe(
    lines: Mapping[Identity, list[Line]], superseded: Mapping[Location, Supersession]
) -> list[Supersession]:
    """The records a dedupe writes (pure): for each call with more than one standing line,
    the earliest archived one is kept (then the first by manifest key and line; a line
    without a readable archived_at last) and every other standing line is superseded."""
    planned: list[Supersession] = []
    for (provider, cdr_id), held in sorted(lines.items()):
        standing = [line for line in held if line.location not in superseded]
        if len(standing) < 2:
            continue
        standing.sort(key=lambda line: (line.archived is None, line.archived or 0.0, line.location))
        kept = standing[0]
        for line in standing[1:]:
            planned.append(
                Supersession(provider, cdr_id, kept.sip_call_id, kept.location, line.location)
            )
    return planned


@dataclass(frozen=True, slots=True)
class Deduped:
    """What a dedupe did."""

    lines: int  # call lines read
    calls: int  # distinct calls among them
    already: int  # lines superseded before this run
    written: list[Supersession]  # the records written now
    writer: str | None  # their chain's writer id (None: nothing to write)


async def dedupe(store: ObjectStore, now: datetime) -> Deduped:
    """Find every call with more than one standing call line and supersede all but one,
    with chained records (see :mod:`archiver.manifest.supersede`); nothing is rewritten.

    Memory: one small entry per call (where its first line is), and the lines
    of calls seen twice.
    """
    records = await read_records(store)
    superseded = records.superseded()
    first: dict[Identity, Line] = {}
    twice: dict[Identity, list[Line]] = {}
    count = 0
    objects = [obj async for obj in store.list(MANIFEST_PREFIX)]
    async with aclosing(read_manifests(store, objects)) as reader:
        async for manifest in reader:
            for entry, number in zip(manifest.calls, manifest.numbers, strict=True):
                count += 1
                line = Line.of(entry, (manifest.key, number))
                held = first.setdefault(entry.identity, line)
                if held is not line:
                    twice.setdefault(entry.identity, [held]).append(line)
    planned = plan_dedupe(twice, superseded)
    writer, _ = await write_records(store, planned, now)
    return Deduped(count, len(first), len(superseded), planned, writer)
