"""Reading the manifest back: its objects, their lines, their date partitions.

Everything here works from the storage alone: the manifest objects under
``manifests/date=YYYY-MM-DD/`` are the archive's own description of itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from archiver.errors import NoArchiveError
from archiver.manifest.entry import ManifestEntry
from archiver.storage.base import ObjectStore, StoredObject
from archiver.storage.layout import CHAIN_PREFIX, MANIFEST_PREFIX, partition_date


@dataclass(frozen=True, slots=True)
class BadLine:
    """A manifest line that cannot be read: the manifest itself is damaged."""

    manifest_key: str
    line_number: int
    reason: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """One manifest object, parsed; ``sha256`` and ``size`` of its bytes (None: not read)."""

    key: str
    calls: list[ManifestEntry]
    bad_lines: list[BadLine]
    sha256: str | None = None
    size: int | None = None
    # The line number (from 1) of each of ``calls``, in the object's bytes.
    numbers: list[int] = field(default_factory=list)

    @property
    def missing(self) -> bool:
        """True when the object was listed but could not be read."""
        return self.sha256 is None


def parse_manifest(key: str, content: bytes) -> Manifest:
    """Every line of one manifest object (pure)."""
    calls: list[ManifestEntry] = []
    numbers: list[int] = []
    bad: list[BadLine] = []
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            calls.append(ManifestEntry.from_line(json.loads(raw), key))
            numbers.append(number)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            bad.append(BadLine(key, number, reason))
    return Manifest(key, calls, bad, hashlib.sha256(content).hexdigest(), len(content), numbers)


def decoded_lines(content: bytes) -> Iterator[dict[str, Any]]:
    """Each line of a manifest object that decodes to a JSON object, not yet checked as a
    manifest line (pure): for a lookup that needs one line, not all of them validated."""
    for raw in content.split(b"\n"):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(line, dict):
            yield line


def line_ids(line: Mapping[str, Any]) -> set[str]:
    """A decoded line's sip_call_id and cdr id, normalized as lookups compare them (pure)."""
    ids = set()
    for name in ("sip_call_id", "cdr_id"):
        value = line.get(name)
        if value not in (None, ""):
            ids.add(unicodedata.normalize("NFC", str(value)).strip())
    ids.discard("")
    return ids


def date_span(since: datetime | None, until: datetime | None, tz: tzinfo) -> tuple[date, date]:
    """The partitions that may hold calls started in [since, until), one day wider each side.

    A partition is the call's local date in the source's zone when archived;
    the extra day on each side covers an archive written with another zone
    setting. Callers still filter each line by ``call_started_at``.
    """
    first = date.min
    if since is not None and since.astimezone(tz).date() > date.min:
        first = since.astimezone(tz).date() - timedelta(days=1)
    last = date.max
    if until is not None and (until - timedelta(microseconds=1)).astimezone(tz).date() < date.max:
        last = (until - timedelta(microseconds=1)).astimezone(tz).date() + timedelta(days=1)
    return first, last


def select_partitions(
    objects: Iterable[StoredObject], since: datetime | None, until: datetime | None, tz: tzinfo
) -> list[StoredObject]:
    """The manifest objects whose partition may hold calls in [since, until), in key order."""
    first, last = date_span(since, until, tz)
    chosen = []
    for obj in objects:
        day = partition_date(obj.key)
        if day is not None and first <= day <= last:
            chosen.append(obj)
    return sorted(chosen, key=lambda o: o.key)


def in_range(call: ManifestEntry, since: datetime | None, until: datetime | None) -> bool:
    """Whether the call started in [since, until); a call without a start time is in no range."""
    if since is None and until is None:
        return True
    started = call.call_started_at
    if started is None:
        return False
    return (since is None or started >= since) and (until is None or started < until)


async def require_archive(store: ObjectStore) -> None:
    """NoArchiveError unless the storage holds at least one manifest object.

    The read-only commands call it first: an empty or absent storage is a
    wrong ``ARCHIVER_STORAGE__URL`` far more often than an archive with nothing
    in it, and they must not create anything (an audit record, a folder) there.
    """
    # A chain link counts too: an archive whose manifest objects were all
    # removed is an archive to report on, not a wrong setting.
    for prefix in (MANIFEST_PREFIX, CHAIN_PREFIX):
        async for _ in store.list(prefix):
            return
    raise NoArchiveError(
        f"no archive in {store.description}: it holds no manifest "
        "(check ARCHIVER_STORAGE__URL, or archive something first)"
    )


# A range of at most this many days is listed one partition at a time (a day of the
# service is ~2,600 objects: three listings, not the listing of five years).
_LIST_BY_DAY = 62


async def list_manifests(
    store: ObjectStore, since: datetime | None, until: datetime | None, tz: tzinfo
) -> list[StoredObject]:
    """The manifest objects of the partitions [since, until) needs: the partitions' own
    listings for a range of a few weeks, else one listing of ``manifests/``."""
    return sorted([obj async for obj in iter_manifests(store, since, until, tz)], key=_key)


def _key(obj: StoredObject) -> str:
    return obj.key


async def iter_manifests(
    store: ObjectStore, since: datetime | None, until: datetime | None, tz: tzinfo
) -> AsyncIterator[StoredObject]:
    """:func:`list_manifests` as the listing goes: in the storage's order, none held."""
    first, last = date_span(since, until, tz)
    if first == date.min or last == date.max or (last - first).days >= _LIST_BY_DAY:
        prefixes = [MANIFEST_PREFIX]
    else:
        prefixes = []
        day = first
        while day <= last:
            prefixes.append(f"{MANIFEST_PREFIX}date={day}/")
            day += timedelta(days=1)
    for prefix in prefixes:
        async for obj in store.list(prefix):
            found = partition_date(obj.key)
            if found is not None and first <= found <= last:
                yield obj


async def read_object(store: ObjectStore, key: str) -> bytes:
    """A small object's bytes (a manifest, a pointer); KeyError if absent."""
    return b"".join([chunk async for chunk in store.read(key)])


async def read_manifests(
    store: ObjectStore, objects: Iterable[StoredObject], concurrency: int = 8
) -> AsyncGenerator[Manifest, None]:
    """Read and parse manifest objects, at most ``concurrency`` at once, yielding each as read.

    Use with ``contextlib.aclosing`` when stopping early: the reads in flight
    are cancelled on close. A manifest listed but gone by the time it is read
    yields one bad line saying so.
    """
    keys = (obj.key for obj in objects)
    async with aclosing(read_objects(store, keys, concurrency)) as reads:
        async for key, content in reads:
            if content is None:
                yield Manifest(key, [], [BadLine(key, 0, "the manifest object disappeared")])
            else:
                yield parse_manifest(key, content)


async def read_objects(
    store: ObjectStore, keys: Iterable[str], concurrency: int = 8
) -> AsyncGenerator[tuple[str, bytes | None], None]:
    """``(key, bytes)`` of small objects, at most ``concurrency`` read at once, in the order
    they arrive; ``None`` for one listed but gone by the time it is read.

    Use with ``contextlib.aclosing`` when stopping early: the reads in flight
    are cancelled on close.
    """
    queue = iter(keys)
    running: set[asyncio.Task[tuple[str, bytes | None]]] = set()

    async def one(key: str) -> tuple[str, bytes | None]:
        try:
            return key, await read_object(store, key)
        except KeyError:
            return key, None

    def start_next() -> None:
        for key in queue:
            running.add(asyncio.create_task(one(key), name=f"read {key}"))
            return

    for _ in range(max(1, concurrency)):
        start_next()
    try:
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                running.discard(task)
                start_next()
                yield task.result()
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
