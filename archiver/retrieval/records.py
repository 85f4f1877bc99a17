"""Reading the manifest back: its lines as records, its date partitions, its objects.

Everything here works from the storage alone: the manifest objects under
``manifests/date=YYYY-MM-DD/`` are the archive's own description of itself.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from archiver.retrieval.errors import NoArchiveError
from archiver.storage.base import ObjectStore, StoredObject

MANIFEST_PREFIX = "manifests/"
_PARTITION = re.compile(r"^manifests/date=(\d{4}-\d{2}-\d{2})/[^/]+$")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("sip_call_id", "cdr_id", "provider", "object_key", "sha256", "size")


@dataclass(frozen=True, slots=True)
class ArchivedCall:
    """One manifest line: an archived recording and what is known of its call."""

    sip_call_id: str
    cdr_id: str
    provider: str
    object_key: str  # as in the manifest: with the S3 prefix, or relative (local)
    sha256: str
    size: int
    content_type: str | None
    call_started_at: datetime | None
    fields: Mapping[str, Any] = field(compare=False, repr=False)  # the whole line
    manifest_key: str | None = field(default=None, compare=False)

    @classmethod
    def from_line(cls, data: object, manifest_key: str | None = None) -> ArchivedCall:
        """Parse one decoded manifest line; ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = [name for name in _REQUIRED if data.get(name) in (None, "")]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        sha = str(data["sha256"]).lower()
        if not _HEX64.fullmatch(sha):
            raise ValueError("sha256 is not 64 hex digits")
        size = data["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("size is not a byte count")
        started: datetime | None = None
        if data.get("call_started_at"):
            try:
                started = datetime.fromisoformat(str(data["call_started_at"]))
            except ValueError:
                raise ValueError("call_started_at is not ISO 8601") from None
            if started.tzinfo is None:
                raise ValueError("call_started_at has no UTC offset")
        return cls(
            sip_call_id=str(data["sip_call_id"]),
            cdr_id=str(data["cdr_id"]),
            provider=str(data["provider"]),
            object_key=str(data["object_key"]),
            sha256=sha,
            size=size,
            content_type=data.get("content_type"),
            call_started_at=started,
            fields=data,
            manifest_key=manifest_key,
        )

    @property
    def identity(self) -> tuple[str, str]:
        """(provider, cdr_id): what makes an archived call unique."""
        return (self.provider, self.cdr_id)


@dataclass(frozen=True, slots=True)
class BadLine:
    """A manifest line that cannot be read: the manifest itself is damaged."""

    manifest_key: str
    line_number: int
    reason: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """One manifest object, parsed."""

    key: str
    calls: list[ArchivedCall]
    bad_lines: list[BadLine]


def parse_manifest(key: str, content: bytes) -> Manifest:
    """Every line of one manifest object (pure)."""
    calls: list[ArchivedCall] = []
    bad: list[BadLine] = []
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            calls.append(ArchivedCall.from_line(json.loads(raw), key))
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            bad.append(BadLine(key, number, reason))
    return Manifest(key, calls, bad)


def partition_date(key: str) -> date | None:
    """The date of a manifest object's partition, or None for a key that is not one."""
    match = _PARTITION.match(key)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


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


def in_range(call: ArchivedCall, since: datetime | None, until: datetime | None) -> bool:
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
    async for _ in store.list(MANIFEST_PREFIX):
        return
    raise NoArchiveError(
        f"no archive in {store.description}: it holds no manifest "
        "(check ARCHIVER_STORAGE__URL, or archive something first)"
    )


async def list_manifests(
    store: ObjectStore, since: datetime | None, until: datetime | None, tz: tzinfo
) -> list[StoredObject]:
    """The manifest objects of the partitions [since, until) needs (one listing)."""
    objects = [obj async for obj in store.list(MANIFEST_PREFIX)]
    return select_partitions(objects, since, until, tz)


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
    queue = iter(objects)
    running: set[asyncio.Task[Manifest]] = set()

    async def one(key: str) -> Manifest:
        try:
            return parse_manifest(key, await read_object(store, key))
        except KeyError:
            return Manifest(key, [], [BadLine(key, 0, "the manifest object disappeared")])

    def start_next() -> None:
        for obj in queue:
            running.add(asyncio.create_task(one(obj.key), name=f"read {obj.key}"))
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
