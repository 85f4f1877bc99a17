"""Bringing ``get``'s id index up to date without listing every manifest key: per-writer watermarks.

Every manifest object the service writes has a chain link naming it, written
after it (:mod:`archiver.manifest.writer`). So the index keeps, per storage
and writer, the last link whose object it has indexed (its *watermark*), and
a later ``get`` asks the storage only for what is new:

1. the writers: one delimiter listing of ``_archiver/chain/``;
2. per writer, its head (one read): the links after the watermark up to the
   head are the new ones (a link past its head proves nothing yet: it is
   taken once the head has moved over it); a writer with no head has its
   links after the watermark listed;
3. when there are new links: the date partitions written since the last
   update (its day, one day before, to today and one day after: the
   partitions are the calls' local days), listed; their new keys indexed,
   and each new link matched to its object by writer and sequence number;
4. a new link matched to no listed object (a backfill, or a repair, writing
   into an old day) read to learn its object's key.

The rollups are read first, as before. Requests: the writers, a head per
writer, a page per partition touched (none when nothing is new), a read per
new object; memory: the new objects only. (A listing of a chain's links
after a watermark would cost S3 one request but a local folder a scan of
every link: 600,000 names per writer at five million calls.) The full listing
of ``manifests/`` stays where it protects something: a cold index (or one
that saw another storage), an index last listed in full longer ago than
``ARCHIVER_CONSOLE__INDEX_FULL_LISTING_HOURS``, and ``get``'s answer for an
id it does not find or finds only in refused lines
(:mod:`archiver.commands.finding`).

What a warm update cannot see: a manifest object no link names (planted
beside the chain, an unsealed legacy object, a batch whose writer crashed
before its link) in a partition not written since the last update. Such an
object is never *served* (only a line the chain proves is), and ``verify``
reports it (OUT_OF_CHAIN); a warm ``get`` of the genuine call serves it
without naming that line among the refused ones until the next full
listing, which also runs whenever the id is not found or only refused lines
hold it. A watermark belongs to one storage: an index file that saw another
one lists that one in full first.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TypeVar

from archiver.manifest.chain import Head, Link
from archiver.manifest.reader import read_object
from archiver.retrieval.local_index import IdIndex
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    CHAIN_PREFIX,
    MANIFEST_PREFIX,
    head_key,
    link_key,
    parse_chain_key,
    parse_manifest_key,
)

T = TypeVar("T")
# Partitions a warm update lists at most; a longer gap since the last one lists in full.
MAX_DAYS_LISTED = 40
# Links (or heads) read at once.
_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class _State:
    full_at: datetime
    warm_at: datetime
    watermarks: dict[str, int]


async def update(
    index: IdIndex,
    store: ObjectStore,
    *,
    full_after: timedelta,
    full: bool = False,
    now: datetime | None = None,
) -> bool:
    """Bring ``index`` up to date with ``store``; True when it listed every manifest key
    (asked with ``full``, a cold index, another storage, or the last full listing older
    than ``full_after``), False when the watermarks sufficed."""
    now = now or datetime.now(UTC)
    storage = store.description
    state = await index.db.run(partial(_state, storage=storage))
    stale = state is None or not (now - full_after < state.full_at <= now)
    days = 0 if state is None else (now.date() - state.warm_at.date()).days
    if full or stale or state is None or not 0 <= days <= MAX_DAYS_LISTED:
        await _full(index, store, storage, now)
        return True
    await _warm(index, store, storage, state, now)
    return False


async def _full(index: IdIndex, store: ObjectStore, storage: str, now: datetime) -> None:
    """Every manifest key listed; the watermarks from the heads, read first (a link at or
    below its head was written, and so was its object, before the listing starts)."""
    writers = await store.list_folders(CHAIN_PREFIX)
    heads = await _gather(_head_seq(store, w) for w in writers)
    await index.refresh(store)
    marks = {w: seq for w, seq in zip(writers, heads, strict=True) if seq is not None}
    await index.db.run(partial(_save, storage=storage, marks=marks, now=now, full=True))


async def _warm(
    index: IdIndex, store: ObjectStore, storage: str, state: _State, now: datetime
) -> None:
    await index.from_rollups(store)
    writers = await store.list_folders(CHAIN_PREFIX)
    heads = await _gather(_head_seq(store, w) for w in writers)
    new: dict[tuple[str, int], None] = {}
    for writer, head in zip(writers, heads, strict=True):
        last = state.watermarks.get(writer, 0)
        if head is not None:
            # The links up to the head: a link past it proves nothing yet (its line would be
            # refused as cut), so it is taken when the head has moved over it.
            new.update(((writer, seq), None) for seq in range(last + 1, head + 1))
            continue
        after = link_key(writer, last) if last else ""
        async for obj in store.list(f"{CHAIN_PREFIX}{writer}/", start_after=after):
            parsed = parse_chain_key(obj.key)
            if parsed is not None and parsed[0] == writer and parsed[1] is not None:
                new[(writer, parsed[1])] = None
    keys: list[str] = []
    if new:
        matched: set[tuple[str, int]] = set()
        for day in _days(state.warm_at.date() - timedelta(days=1), now.date() + timedelta(days=1)):
            async for obj in store.list(f"{MANIFEST_PREFIX}date={day.isoformat()}/"):
                keys.append(obj.key)  # every new key of the partition, chained or not
                named = parse_manifest_key(obj.key)
                if named is not None:
                    matched.add((named.writer, named.seq))
        elsewhere = [link for link in new if link not in matched]
        keys += [k for k in await _gather(_named(store, *link) for link in elsewhere) if k]
        await index.add_new(store, keys)
    marks: dict[str, int] = {}
    for writer, seq in new:  # in key order: each writer's last is its highest
        marks[writer] = seq
    await index.db.run(partial(_save, storage=storage, marks=marks, now=now, full=False))


def _days(first: date, last: date) -> Iterable[date]:
    return (first + timedelta(days=i) for i in range((last - first).days + 1))


async def _gather(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Each awaitable's result, at most :data:`_CONCURRENCY` at once, in order."""
    semaphore = asyncio.Semaphore(_CONCURRENCY)

    async def one(coro: Awaitable[T]) -> T:
        async with semaphore:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))


async def _head_seq(store: ObjectStore, writer: str) -> int | None:
    try:
        return Head.from_bytes(await read_object(store, head_key(writer))).seq
    except (KeyError, ValueError):
        return None  # no head (or a bad one): its links are all listed next time


async def _named(store: ObjectStore, writer: str, seq: int) -> str | None:
    """The manifest key link ``seq`` of ``writer`` names (None: gone, unreadable, or not a
    manifest object's: a supersede record's, a seal of a legacy object already listed)."""
    try:
        key = Link.from_bytes(await read_object(store, link_key(writer, seq))).manifest_key
    except (KeyError, ValueError):
        return None  # verify reports it; the full listing on a miss looks again
    return key if key.startswith(MANIFEST_PREFIX) else None


def _state(conn: sqlite3.Connection, storage: str) -> _State | None:
    row = conn.execute(
        "SELECT full_at, warm_at FROM id_listings WHERE storage = ?", (storage,)
    ).fetchone()
    if row is None:
        return None
    marks = conn.execute("SELECT writer, seq FROM id_watermarks WHERE storage = ?", (storage,))
    return _State(
        datetime.fromtimestamp(row[0], UTC),
        datetime.fromtimestamp(row[1], UTC),
        {str(w): int(q) for w, q in marks},
    )


def _save(
    conn: sqlite3.Connection, storage: str, marks: Mapping[str, int], now: datetime, full: bool
) -> None:
    at = now.timestamp()
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Only forward: two commands updating at once leave the further one's marks.
        conn.executemany(
            "INSERT INTO id_watermarks (storage, writer, seq) VALUES (?, ?, ?) "
            "ON CONFLICT (storage, writer) DO UPDATE SET seq = max(seq, excluded.seq)",
            [(storage, w, q) for w, q in marks.items()],
        )
        if full:
            conn.execute(
                "INSERT OR REPLACE INTO id_listings (storage, full_at, warm_at) VALUES (?, ?, ?)",
                (storage, at, at),
            )
        else:
            conn.execute("UPDATE id_listings SET warm_at = ? WHERE storage = ?", (at, storage))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
