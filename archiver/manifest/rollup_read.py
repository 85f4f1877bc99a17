"""Reading manifest objects through rollups: one large read instead of thousands of small ones.

A rollup (:mod:`archiver.manifest.rollup`) copies a run of a writer's
manifest objects into one object. A reader that wants every manifest object
(``get``'s and the console's indexes, ``search``, ``reconcile``...) reads a
rollup's three parts once and takes each covered object's bytes from it, but
only when the rollup checks out (:func:`~archiver.manifest.rollup.check_rollup`:
its record, entries and lines agree, each slice's SHA-256 is its link's). A
rollup that does not is logged and set aside: its objects are read one by one,
as if it did not exist. A covered object's lines keep the SMALL object's key
(and so their line numbers): a rollup's copy is never a second call line.

Memory: one rollup at a time (at most 64 MiB of lines and its entries), each
part's size checked from the listing before it is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from archiver.manifest.chain import Link
from archiver.manifest.reader import BadLine, Manifest, parse_manifest, read_object, read_objects
from archiver.manifest.rollup import (
    MAX_ENTRIES_BYTES,
    MAX_RECORD_BYTES,
    ROLLUP_MAX_BYTES,
    RollupProblem,
    RollupRecord,
    check_entries,
    check_rollup,
)
from archiver.storage.base import ObjectStore, StoredObject
from archiver.storage.layout import (
    ROLLUP_DATA,
    ROLLUP_ENTRIES,
    ROLLUP_PREFIX,
    ROLLUP_RECORD,
    parse_rollup_key,
    partition_date,
    rollup_data_key,
    rollup_entries_key,
    rollup_key,
)

log = logging.getLogger("archiver.rollups")


@dataclass(frozen=True, slots=True)
class RollupRef:
    """A rollup whose record is listed: its key and the listed size of each part (None:
    that part is not listed)."""

    key: str
    writer: str
    n: int
    sizes: dict[str, int | None] = field(compare=False)


@dataclass
class RollupRead:
    """A rollup read: where each covered object sits in its lines (key, start, end), in
    chain order, when it checks out; else what is wrong with it (and no objects)."""

    ref: RollupRef
    record: RollupRecord | None
    slices: list[tuple[str, int, int]]
    problems: list[RollupProblem]
    data: bytes = field(default=b"", repr=False)
    # (seq, SHA-256 of its bytes, prev_seq, prev_sha256) of each covered object's link.
    links: list[tuple[int, str, int | None, str | None]] = field(default_factory=list, repr=False)

    @property
    def usable(self) -> bool:
        """True when the rollup checked out: its objects may be served."""
        return not self.problems and self.record is not None

    def objects(self) -> Iterator[tuple[str, bytes]]:
        """(manifest key, bytes) of each covered object, sliced as asked (one copy at a time)."""
        for key, start, end in self.slices:
            yield key, self.data[start:end]


def rollup_refs(objects: Iterable[StoredObject]) -> list[RollupRef]:
    """The rollups of a listing of ``_archiver/rollups/`` whose record is listed (finished
    ones), by writer and number (pure). Entries without a record (an unfinished rollup)
    are left out: they are never read."""
    parts: dict[tuple[str, int], dict[str, int | None]] = {}
    for obj in objects:
        parsed = parse_rollup_key(obj.key)
        if parsed is not None:
            parts.setdefault((parsed.writer, parsed.n), {})[parsed.part] = obj.size
    refs = []
    for (writer, n), sizes in sorted(parts.items()):
        if ROLLUP_RECORD in sizes:
            for part in (ROLLUP_ENTRIES, ROLLUP_DATA):
                sizes.setdefault(part, None)
            refs.append(RollupRef(rollup_key(writer, n), writer, n, sizes))
    return refs


async def list_rollups(store: ObjectStore) -> list[RollupRef]:
    """The finished rollups in the storage (one listing of ``_archiver/rollups/``)."""
    return rollup_refs([obj async for obj in store.list(ROLLUP_PREFIX)])


def _too_big(ref: RollupRef) -> RollupProblem | None:
    for part, key, cap in (
        (ROLLUP_RECORD, ref.key, MAX_RECORD_BYTES),
        (ROLLUP_ENTRIES, rollup_entries_key(ref.writer, ref.n), MAX_ENTRIES_BYTES),
        (ROLLUP_DATA, rollup_data_key(ref.writer, ref.n), ROLLUP_MAX_BYTES),
    ):
        size = ref.sizes.get(part)
        if size is None:
            return RollupProblem(key, "not in the storage's listing")
        if size > cap:
            return RollupProblem(key, f"{size} bytes, more than a rollup part holds ({cap})")
    return None


async def read_record(store: ObjectStore, ref: RollupRef) -> RollupRecord | None:
    """A rollup's record alone (None when it is unreadable or too large)."""
    size = ref.sizes.get(ROLLUP_RECORD)
    if size is None or size > MAX_RECORD_BYTES:
        return None
    try:
        return RollupRecord.from_bytes(await read_object(store, ref.key))
    except (KeyError, ValueError):
        return None


async def covered_keys(store: ObjectStore, ref: RollupRef) -> list[str] | None:
    """The manifest keys a rollup covers, from its record and entries alone (checked
    against each other); None when they do not check out (or are too large)."""
    if _too_big(ref) is not None:
        return None
    try:
        record = await read_object(store, ref.key)
        entries = await read_object(store, rollup_entries_key(ref.writer, ref.n))
    except KeyError:
        return None
    checked = check_entries(record, entries, ref.key)
    if not checked.ok:
        return None
    return [Link.from_bytes(entry.link).manifest_key for entry in checked.entries]


async def read_parts(store: ObjectStore, ref: RollupRef) -> tuple[bytes, bytes, bytes] | RollupRead:
    """A rollup's three parts (record, entries, lines), read (bounded by the format's caps);
    or, when they cannot be read, the rollup read with its problem (and no objects)."""
    wrong = _too_big(ref)
    if wrong is not None:
        return RollupRead(ref, None, [], [wrong])
    try:
        record, entries, data = await asyncio.gather(
            read_object(store, ref.key),
            read_object(store, rollup_entries_key(ref.writer, ref.n)),
            read_object(store, rollup_data_key(ref.writer, ref.n)),
        )
    except KeyError as exc:
        return RollupRead(ref, None, [], [RollupProblem(str(exc.args[0]), "gone when read")])
    return record, entries, data


def check_parts(ref: RollupRef, record: bytes, entries: bytes, data: bytes) -> RollupRead:
    """A rollup's parts checked (pure: no logging, so it may run in a worker process);
    :func:`log_unused` reports one that does not check out."""
    checked = check_rollup(record, entries, data, ref.key)
    if not checked.ok:
        return RollupRead(ref, checked.record, [], checked.problems)
    slices = [
        (obj.manifest_key, obj.offset, obj.offset + obj.link.manifest_size)
        for obj in checked.objects
    ]
    links = [
        (obj.seq, obj.link_sha256, obj.link.prev_seq, obj.link.prev_sha256)
        for obj in checked.objects
    ]
    return RollupRead(ref, checked.record, slices, [], data, links)


def log_unused(key: str, problems: Iterable[RollupProblem]) -> None:
    """Log why the rollup at ``key`` is set aside (what its check found)."""
    for problem in problems:
        log.warning(
            "rollup %s not used (its objects are read one by one): %s: %s",
            key,
            problem.where,
            problem.detail,
        )


async def read_rollup(store: ObjectStore, ref: RollupRef) -> RollupRead:
    """Read and check one rollup's three parts (bounded by the format's caps)."""
    parts = await read_parts(store, ref)
    if isinstance(parts, RollupRead):
        return parts
    read = check_parts(ref, *parts)
    log_unused(ref.key, read.problems)
    return read


def _dates_of(keys: Iterable[str]) -> set[str]:
    days = set()
    for key in keys:
        day = partition_date(key)
        if day is not None:
            days.add(day.isoformat())
    return days


def _meets(record: RollupRecord, days: set[str]) -> bool:
    return any(record.first_date <= day <= record.last_date for day in days)


@runtime_checkable
class ToRead(Protocol):
    """A listing of manifest objects a reader takes each of once: every object in key
    order, :meth:`take` one served from a rollup, :meth:`left` the rest. A list in
    memory, or :class:`archiver.retrieval.manifest_listing.ListedManifests` on a scratch
    file (a whole archive's listing: about 400 bytes a manifest object in memory)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[StoredObject]: ...

    def take(self, key: str) -> bool:
        """True (once) if ``key`` is listed and not yet taken: it is served now."""
        ...

    def left(self) -> Iterator[StoredObject]:
        """The objects not taken, in the listing's order."""
        ...


class _InMemory:
    """:class:`ToRead` of a list of objects."""

    def __init__(self, objects: Sequence[StoredObject]) -> None:
        self._objects = objects
        self._wanted = {obj.key for obj in objects}
        self._served: set[str] = set()

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[StoredObject]:
        return iter(self._objects)

    def take(self, key: str) -> bool:
        if key not in self._wanted or key in self._served:
            return False
        self._served.add(key)
        return True

    def left(self) -> Iterator[StoredObject]:
        return (obj for obj in self._objects if obj.key not in self._served)


def to_read(objects: Iterable[StoredObject]) -> ToRead:
    """``objects`` as a :class:`ToRead`: as they are if they are one, else in memory."""
    return objects if isinstance(objects, ToRead) else _InMemory(list(objects))


async def manifest_objects(
    store: ObjectStore,
    objects: Iterable[StoredObject],
    concurrency: int = 8,
    *,
    rollups: Sequence[RollupRef] | None = None,
) -> AsyncGenerator[tuple[str, bytes | None], None]:
    """``(key, bytes)`` of each of ``objects`` (a listing of ``manifests/``, or part of
    it), each once: from a checked rollup covering it, else read alone (``None``: listed
    but gone when read). Rollups whose dates do not meet the objects' partitions are
    not read (their record is). ``rollups``: :func:`list_rollups` if not given.
    ``objects`` on a scratch file (:class:`ToRead`) are marked as taken there: nothing
    held grows with the listing, and the listing is used up (a second read of it gives
    what the first did not).

    Use with ``contextlib.aclosing`` when stopping early.
    """
    wanted = to_read(objects)
    refs = await list_rollups(store) if rollups is None else rollups
    if refs and len(wanted):
        days = _dates_of(obj.key for obj in wanted)
        for ref in refs:
            record = await read_record(store, ref)
            if record is not None and not _meets(record, days):
                continue
            rollup = await read_rollup(store, ref)
            for key, content in rollup.objects():
                if wanted.take(key):
                    yield key, content
    rest = (obj.key for obj in wanted.left())
    async with aclosing(read_objects(store, rest, concurrency)) as reads:
        async for key, read in reads:
            yield key, read


async def read_manifests(
    store: ObjectStore, objects: Iterable[StoredObject], concurrency: int = 8
) -> AsyncGenerator[Manifest, None]:
    """:func:`archiver.manifest.reader.read_manifests` through rollups: each manifest
    object parsed, under its own key, read from a checked rollup where one covers it."""
    async with aclosing(manifest_objects(store, to_read(objects), concurrency)) as reads:
        async for key, content in reads:
            if content is None:
                yield Manifest(key, [], [BadLine(key, 0, "the manifest object disappeared")])
            else:
                yield parse_manifest(key, content)
