"""``verify``'s view of the rollups: each checked from its bytes, then used to prove the
small objects it covers from the storage's listing instead of reading each one.

First pass (before the chain is walked): every rollup record and its entries
are read and checked against each other (:func:`~archiver.manifest.rollup.check_entries`),
the records of a writer against the one before (contiguous, no overlap,
``prev_rollup_sha256``). A rollup that does not check out is a ``ROLLUP``
problem and is not used. Entries without a record (a crash mid-rollup) are
a note: never used. The links the checked entries hold are offered to the
chain audit, which takes a link's copy instead of reading it only when the
listing proves the stored link is those bytes (:func:`listed_as`); after the
walk, each rollup's last link must be the walked one (``end_sha256``).

Second pass (the manifest objects): a rollup holding listed manifest objects
is read (entries and lines, once each) and checked in full; each covered
object whose listing proves it is its slice is parsed from the slice under its
own key, the others are read as usual. A small object removed after its
rollup is not listed, so it is ``MANIFEST_MISSING`` exactly as before.

Proof by listing: a plain 32-hex ETag is the MD5 of a single-part upload's
bytes; the listed size and ETag equal to those of the copy prove the stored
object is the copy (an MD5 second preimage is not feasible). Any other ETag
(multipart, SSE-KMS) or none (a local folder) means the object is read.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import sqlite3
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field

from archiver.manifest.chain import Link
from archiver.manifest.reader import Manifest, parse_manifest, read_manifests
from archiver.manifest.rollup import (
    MAX_ENTRIES_BYTES,
    MAX_RECORD_BYTES,
    RollupRecord,
    check_entries,
    check_rollup,
)
from archiver.manifest.rollup_walk import read_in_order
from archiver.retrieval.manifest_listing import ListedManifests
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.rollup_copies import RollupCopies
from archiver.storage.base import ObjectStore, StoredObject
from archiver.storage.layout import (
    ROLLUP_DATA,
    ROLLUP_ENTRIES,
    ROLLUP_PREFIX,
    ROLLUP_RECORD,
    parse_rollup_key,
)

_MD5 = re.compile(r"[0-9a-f]{32}")


def listed_as(obj: StoredObject, data: bytes) -> bool:
    """True when the listing proves ``obj`` holds exactly ``data`` (size, and a plain MD5
    ETag); False when it cannot say or says otherwise (read the object)."""
    return listed_bytes(obj.size, obj.proof.etag, data)


def listed_bytes(size: int, etag: str | None, data: bytes) -> bool:
    """:func:`listed_as` from the listed size and ETag alone."""
    etag = (etag or "").lower()
    if size != len(data) or not _MD5.fullmatch(etag):
        return False
    return hashlib.md5(data, usedforsecurity=False).hexdigest() == etag


@dataclass
class Rollup:
    """One rollup whose record and entries check out (its lines are checked when read)."""

    record: RollupRecord
    record_bytes: bytes


@dataclass
class RollupAudit:
    """The rollups found, checked; what the chain audit and the manifest reading may use."""

    rollups: dict[str, list[Rollup]] = field(default_factory=dict)  # by writer, in order
    # The checked rollups' copies of their links, by writer and seq, on a table.
    links: RollupCopies = field(default_factory=RollupCopies)
    problems: list[Problem] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # entries keys without a record
    read_from: int = 0  # manifest objects proven and parsed from a rollup's lines

    def _problem(self, where: str, detail: str) -> None:
        self.problems.append(Problem(ProblemKind.ROLLUP, where, detail))

    def take_problems(self) -> list[Problem]:
        """The problems found since the last call (each said once)."""
        problems, self.problems = self.problems, []
        return problems

    def note(self) -> str | None:
        """One line for the report (None without any rollup)."""
        if not self.rollups and not self.unfinished:
            return None
        count = sum(len(r) for r in self.rollups.values())
        objects = sum(r.record.objects for rs in self.rollups.values() for r in rs)
        text = (
            f"ROLLUPS {count} rollup(s) checked, covering {objects} manifest object(s) of "
            f"{len(self.rollups)} writer(s); {self.read_from} manifest object(s) proven from "
            "their lines and the listing"
        )
        for key in self.unfinished:
            text += (
                f"; unfinished rollup {key} (entries without a record: a rollup that stopped; "
                "not used; archiver rollup finishes it)"
            )
        return text

    def on_walk(self, walks: Mapping[str, Mapping[int, str]]) -> None:
        """After the chain walk: a rollup whose last link is not the walked one is not used."""
        for writer, rollups in self.rollups.items():
            walk = walks.get(writer, {})
            kept = []
            for rollup in rollups:
                record = rollup.record
                if walk.get(record.last_seq) != record.end_sha256:
                    self._problem(
                        record.key,
                        f"it ends at link {record.last_seq} with SHA-256 {record.end_sha256}, "
                        "which is not on the chain walked back from the head of writer "
                        f"{writer}: a rollup of links not the chain's (planted or altered)",
                    )
                else:
                    kept.append(rollup)
            self.rollups[writer] = kept
        self.links.clear()  # the chain audit has what it needed

    def of_writer(self, writer: str) -> list[Rollup]:
        """``writer``'s checked rollups, in seq order."""
        return self.rollups.get(writer, [])

    async def token_copies(self, store: ObjectStore, rollup: Rollup) -> dict[int, bytes]:
        """The tokens ``rollup`` holds, by seq (its entries read again, and checked again
        against its record): one rollup's at a time, at most its 5,000 objects' tokens."""
        record = rollup.record
        (data,) = await read_in_order(store, [record.entries_key], 1)
        checked = check_entries(rollup.record_bytes, data or b"", record.key)
        for problem in checked.problems:
            self._problem(problem.where, problem.detail)
        return {e.seq: e.token for e in checked.entries if e.token is not None}

    def covering(self, writer: str, seq: int) -> Rollup | None:
        """The checked rollup holding link ``seq`` of ``writer``, if any."""
        rollups = self.rollups.get(writer, [])
        at = bisect.bisect_right([r.record.first_seq for r in rollups], seq) - 1
        if at >= 0 and rollups[at].record.first_seq <= seq <= rollups[at].record.last_seq:
            return rollups[at]
        return None

    async def read_manifests(
        self,
        store: ObjectStore,
        objects: ListedManifests,
        links: Mapping[str, Link],
        concurrency: int = 8,
    ) -> AsyncGenerator[Manifest, None]:
        """The manifest objects listed: from the rollups where the listing proves them,
        else read one by one (``links``: the walked chain's links, by manifest key)."""
        wanted: dict[str, Rollup] = {}  # the rollups holding a listed object, in key order
        for obj in objects:
            # By the walked chain's link (a sealed legacy object's key names no writer).
            link = links.get(obj.key)
            rollup = self.covering(link.writer, link.seq) if link else None
            if rollup is not None:
                wanted.setdefault(rollup.record.key, rollup)
        for rollup in wanted.values():
            async with aclosing(self._from_rollup(store, rollup, objects, links)) as parsed:
                async for manifest in parsed:
                    yield manifest
        # What no rollup proved: read it.
        async for manifest in read_manifests(store, objects.left(), concurrency):
            yield manifest

    async def _from_rollup(
        self,
        store: ObjectStore,
        rollup: Rollup,
        objects: ListedManifests,
        links: Mapping[str, Link],
    ) -> AsyncGenerator[Manifest, None]:
        """Parse each listed object of this rollup its lines prove, one at a time as it is
        yielded (a rollup holds up to 5,000 objects); marks it done in ``objects``."""
        record = rollup.record
        entries, data = await read_in_order(store, [record.entries_key, record.data_key], 2)
        if entries is None or data is None:
            self._problem(record.key, "its entries or its lines vanished while being read")
            return
        checked = check_rollup(rollup.record_bytes, entries, data, record.key)
        for problem in checked.problems:
            self._problem(problem.where, problem.detail)
        for obj in checked.objects:
            if not record.first_seq <= obj.link.seq <= record.last_seq:
                continue  # the walked link is then another rollup's
            listed = objects.get(obj.manifest_key)
            content = obj.manifest_bytes
            if listed is None or links.get(obj.manifest_key) != obj.link:
                continue
            if listed_as(listed, content):
                objects.done(obj.manifest_key)
                self.read_from += 1
                yield parse_manifest(obj.manifest_key, content)


async def audit_rollups(store: ObjectStore, db: sqlite3.Connection | None = None) -> RollupAudit:
    """Read and check every rollup's record and entries (one listing, two reads a rollup).
    ``db``: where the copies of the links go (:mod:`archiver.retrieval.rollup_copies`;
    verify: the connection its chain is walked on); None: in memory."""
    audit = RollupAudit(links=RollupCopies(db))
    parts: dict[str, dict[str, dict[int, StoredObject]]] = {}
    async for obj in store.list(ROLLUP_PREFIX):
        parsed = parse_rollup_key(obj.key)
        if parsed is None:
            audit._problem(obj.key, "not a rollup object the archiver writes (planted?)")
            continue
        parts.setdefault(parsed.writer, {}).setdefault(parsed.part, {})[parsed.n] = obj
    for writer, found in sorted(parts.items()):
        await _audit_writer(store, audit, writer, found)
    return audit


async def _audit_writer(
    store: ObjectStore,
    audit: RollupAudit,
    writer: str,
    found: dict[str, dict[int, StoredObject]],
) -> None:
    records = found.get(ROLLUP_RECORD, {})
    entries = found.get(ROLLUP_ENTRIES, {})
    data = found.get(ROLLUP_DATA, {})
    last = max(records, default=0)
    for n, obj in sorted(entries.items()):
        if n not in records:
            if n == last + 1:
                audit.unfinished.append(obj.key)
            else:
                audit._problem(obj.key, f"entries of rollup {n}, which has no record")
    for n, obj in sorted(data.items()):
        if n not in records and n not in entries:
            audit._problem(obj.key, f"lines of rollup {n}, which has neither record nor entries")
    previous: tuple[RollupRecord, bytes] | None = None
    kept: list[Rollup] = []
    for n in range(1, last + 1):
        rollup = await _checked(store, audit, records.get(n), entries.get(n), data.get(n), n)
        if rollup is not None and not _follows(audit, rollup[0], previous, writer, n):
            rollup = None
        if rollup is None:
            previous = None
            continue
        previous = (rollup[0].record, rollup[0].record_bytes)
        kept.append(rollup[0])
        audit.links.add(writer, rollup[1])  # a rollup's copies at a time, not the writer's
    if kept:
        audit.rollups[writer] = kept


async def _checked(
    store: ObjectStore,
    audit: RollupAudit,
    record: StoredObject | None,
    entries: StoredObject | None,
    data: StoredObject | None,
    n: int,
) -> tuple[Rollup, list[tuple[int, bytes]]] | None:
    if record is None:
        return None  # a record removed: said by the next record's prev_rollup_sha256
    if entries is None or data is None:
        missing = "entries" if entries is None else "lines"
        audit._problem(record.key, f"its {missing} object is missing")
        return None
    if record.size > MAX_RECORD_BYTES or entries.size > MAX_ENTRIES_BYTES:
        audit._problem(record.key, "its record or entries are larger than any rollup's")
        return None
    record_bytes, entries_bytes = await read_in_order(store, [record.key, entries.key], 2)
    if record_bytes is None or entries_bytes is None:
        audit._problem(record.key, "its record or entries vanished while being read")
        return None
    checked = check_entries(record_bytes, entries_bytes, record.key)
    for problem in checked.problems:
        audit._problem(problem.where, problem.detail)
    if checked.record is None or not checked.ok:
        return None
    if checked.record.data_size != data.size:
        audit._problem(
            data.key, f"{data.size} bytes; the record records {checked.record.data_size}"
        )
        return None
    return Rollup(checked.record, record_bytes), [(e.seq, e.link) for e in checked.entries]


def _follows(
    audit: RollupAudit,
    rollup: Rollup,
    previous: tuple[RollupRecord, bytes] | None,
    writer: str,
    n: int,
) -> bool:
    """Record ``n`` against record ``n - 1``: contiguous, and naming its bytes."""
    record = rollup.record
    if n == 1:
        if record.prev_rollup_sha256 is not None:
            audit._problem(record.key, "the first rollup names a rollup before it")
            return False
        return True
    if previous is None:
        audit._problem(
            record.key,
            f"rollup {n - 1} of writer {writer} is missing or does not check out: this one "
            "cannot be tied to the one before (a record removed?)",
        )
        return False
    before, before_bytes = previous
    expected = (before.last_seq, before.end_sha256)
    if (record.prev_seq, record.prev_sha256) != expected:
        audit._problem(
            record.key,
            f"it starts after link {record.prev_seq}; rollup {n - 1} ends at link "
            f"{before.last_seq} (rollups overlap or leave a gap)",
        )
        return False
    if record.prev_rollup_sha256 != hashlib.sha256(before_bytes).hexdigest():
        audit._problem(record.key, f"it does not name the bytes of rollup {n - 1}'s record")
        return False
    return True


def copies_of(audit: RollupAudit | None, writer: str) -> Mapping[int, bytes]:
    """The checked rollups' copies of ``writer``'s links, by seq (empty without any)."""
    return {} if audit is None else audit.links.get(writer, {})
