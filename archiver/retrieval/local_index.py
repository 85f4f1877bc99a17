"""The local index ``get`` and ``hold`` find a call by: each id -> the manifest objects naming it.

A cache of the storage in a SQLite file (``ARCHIVER_CONSOLE__INDEX_PATH``,
beside the console's tables): for every manifest object read, a 64-bit hash
of each id (sip_call_id and cdr id, as :func:`normalize_id` compares them)
of its lines, and nothing else. A lookup reads the manifest objects the id's
hash names and takes the lines there, so a hash collision costs one more
read, never a wrong answer; and a machine that never saw the archive builds
it from the manifests alone at the cost of reading each one once, decoding
its JSON and writing two integers per id (the console's index also keeps
every line and its search terms: several times the work, minutes at a
million calls).

Manifest objects are written once and never changed, so a key indexed is
done: an update reads each rollup it has not read yet (the objects it covers,
from its lines, when it checks out: :mod:`archiver.manifest.rollup_read`),
then lists ``manifests/`` and reads the keys it has not seen. A
manifest's hashes and its key are committed together, so a crash or two
commands updating at once leave it indexed whole or not at all.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import aclosing
from dataclasses import replace
from functools import partial

from archiver import memory
from archiver.index_db import IndexDatabase
from archiver.manifest.reader import read_objects
from archiver.manifest.rollup_read import (
    RollupRead,
    RollupRef,
    covered_keys,
    list_rollups,
    log_unused,
    read_parts,
    read_rollup,
)
from archiver.retrieval import id_store, proven_links
from archiver.retrieval.id_rows import (
    RollupRows,
    id_hash,
    manifest_ids,
    object_rows,
    rollup_rows,
    rows_of,
)
from archiver.retrieval.index import normalize_id
from archiver.storage.base import ObjectStore, listed_keys
from archiver.storage.layout import MANIFEST_PREFIX

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS id_manifests (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS id_rollups (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS id_hashes (
    hash INTEGER NOT NULL,
    manifest INTEGER NOT NULL,
    PRIMARY KEY (hash, manifest)
) WITHOUT ROWID;
-- A build from nothing appends each rollup's hashes here (committed with their manifest
-- objects), then moves them into id_hashes sorted, in one transaction: inserted one by
-- one, random 64-bit hashes touch most pages of a B-tree larger than the page cache at
-- every commit (at 5 million calls, 10 million rows: the cold build's time grew 10x for
-- 5x the calls). Lookups read both tables, so rows left here by a crash or by a build
-- running in another process are found; the next update moves them.
CREATE TABLE IF NOT EXISTS id_hashes_staged (
    hash INTEGER NOT NULL,
    manifest INTEGER NOT NULL
);
-- Per storage: when it was last listed in full, and last brought up to date.
CREATE TABLE IF NOT EXISTS id_listings (
    storage TEXT PRIMARY KEY,
    full_at REAL NOT NULL,
    warm_at REAL NOT NULL
) WITHOUT ROWID;
-- Per storage and writer: the last chain link whose manifest object is indexed.
CREATE TABLE IF NOT EXISTS id_watermarks (
    storage TEXT NOT NULL,
    writer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (storage, writer)
) WITHOUT ROWID;
"""
    + proven_links.SCHEMA
)
# Keys of a listing checked against the index at once.
_LISTED_AT_ONCE = 10_000
# Manifest objects (about 1,000 lines each) written per transaction.
_COMMIT_EVERY = 50
# A build from nothing with more rollups to read than this checks them and hashes their
# ids in worker processes (one per core but one; an archive of less than about 300,000 calls in
# the service's shape starts none: at 100k, 7 rollups, the workers' start-up cost more
# than they saved).
# Sent ahead of the writer: at most _AHEAD rollups per worker and _AHEAD_BYTES of their
# parts (at least one): what they hold here and in the workers (a rollup's lines are
# up to 64 MiB; the service's, 5,000 objects of 4 lines, about 16 MB). At 5M calls,
# 2 and 64 MiB gave the same CPU and about 50 MiB more peak RSS than 1 and 32 MiB.
POOL_AFTER_ROLLUPS = 16
_AHEAD = 1
_AHEAD_BYTES = 32 * 1024 * 1024

__all__ = ["SCHEMA", "IdIndex", "id_hash", "manifest_ids"]


class IdIndex:
    """The id index in ``db`` (a :class:`IndexDatabase` opened with :data:`SCHEMA`): brought up
    to date from the storage, then asked."""

    def __init__(self, db: IndexDatabase, *, pool_after: int = POOL_AFTER_ROLLUPS) -> None:
        """``pool_after``: the rollups a build from nothing reads in this process at most;
        with more, it checks and hashes them in worker processes."""
        self.db = db
        self.pool_after = pool_after
        self.pooled = 0  # rollups checked and hashed in worker processes (for the bench)
        self.shared = 0  # and in this process while the workers were busy

    async def refresh(
        self,
        store: ObjectStore,
        concurrency: int = 16,
        *,
        prefixes: Sequence[str] = (MANIFEST_PREFIX,),
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        """Index every manifest object not indexed yet; returns how many were added.

        Only the objects under ``prefixes`` (one listing each), and of those only
        the keys ``keep`` accepts (the pipeline asks for a range of date
        partitions). The listing is taken a slice at a time (memory bounded by
        the slice, not the archive: a million keys held at once were 280 MB).
        """
        await self.db.run(id_store.unstage)  # rows an interrupted build left staged
        unstaging: asyncio.Task[None] | None = None
        if keep is None and MANIFEST_PREFIX in prefixes:
            await self.from_rollups(store, unstage=False)
            # The hashes a build from nothing staged are sorted in on a connection of their
            # own while the listing is checked on this one (at 5M calls, 8 s beside 12 s).
            unstaging = asyncio.create_task(self._unstage_aside())
        added = 0
        try:
            for prefix in prefixes:
                listed: list[str] = []
                async with aclosing(listed_keys(store, prefix)) as keys:  # stopped if we fail
                    async for key in keys:
                        if keep is None or keep(key):
                            listed.append(key)
                        if len(listed) >= _LISTED_AT_ONCE:
                            added += await self.add_new(store, listed, concurrency, unstaging)
                            listed = []
                added += await self.add_new(store, listed, concurrency, unstaging)
        finally:
            if unstaging is not None:
                await unstaging
        return added

    async def _unstage_aside(self) -> None:
        """:func:`id_store.unstage` on a connection of its own (this one stays free to read:
        the file is in WAL mode, its readers are not stopped by a writer)."""
        if str(self.db.path) == ":memory:" or not await self.db.run(_in_wal_mode):
            await self.db.run(id_store.unstage)  # another connection's write would lock it out
            return
        aside = await asyncio.to_thread(IndexDatabase, self.db.path, SCHEMA)
        try:
            await aside.run(id_store.unstage)
        finally:
            aside.close()

    async def add_new(
        self,
        store: ObjectStore,
        keys: Sequence[str],
        concurrency: int = 16,
        before_writing: Awaitable[None] | None = None,
    ) -> int:
        """Read and index those of ``keys`` not indexed yet; returns how many were added.

        Reading and decoding (this thread) overlap with writing (SQLite's
        thread, which runs without the GIL): one batch is written while the
        next is read. ``before_writing``: awaited before the first write (another
        connection's write in progress).
        """
        known = await self.db.run(partial(id_store.known, keys=keys)) if keys else set()
        new = [key for key in dict.fromkeys(keys) if key not in known]
        if new and before_writing is not None:
            await before_writing
        added = 0
        pending: list[tuple[str, list[int]]] = []
        writing: asyncio.Task[None] | None = None
        try:
            async with aclosing(read_objects(store, new, concurrency)) as reads:
                async for key, content in reads:
                    if content is None:
                        continue  # gone since the listing: looked at again next time
                    pending.append(object_rows(key, content))
                    added += 1
                    if len(pending) >= _COMMIT_EVERY:
                        if writing is not None:
                            await writing
                        writing = asyncio.create_task(
                            self.db.run(partial(id_store.store, batch=pending))
                        )
                        pending = []
        finally:
            if writing is not None:
                await writing  # a write already in SQLite's hands ends either way
            if pending:
                # Even when a read failed: what was read whole is kept for the next command.
                await self.db.run(partial(id_store.store, batch=pending))
        return added

    async def from_rollups(self, store: ObjectStore, *, unstage: bool = True) -> None:
        """Each rollup not read yet, read once (a checked one gives the ids of the objects
        it covers; one that does not check out leaves them to be read one by one).

        The links a checked rollup holds are kept as hints for the chain walks
        of later ``get``s (:mod:`archiver.retrieval.proven_links`): each row's
        SHA-256 is computed here from the link's bytes, so a walk uses it only
        where the chain it walked records that very SHA-256. ``unstage``: the hashes a
        build from nothing staged sorted in before it returns (else the caller's to do).
        """
        refs = await list_rollups(store)
        seen = await self.db.run(
            partial(id_store.known, keys=[r.key for r in refs], table="id_rollups")
        )
        todo = [ref for ref in refs if ref.key not in seen]
        # A fresh index has none of the objects: their keys are not worth checking first.
        fresh = await self.db.run(id_store.empty)
        try:
            if fresh and len(todo) > self.pool_after and _cores() > 1:
                await self._rollups_in_workers(store, todo)
            else:
                await self._rollups_here(store, todo, fresh)
        finally:
            if fresh and unstage:
                # Whatever was written, sorted into id_hashes (also after a failed read).
                await self.db.run(id_store.unstage)

    async def _rollups_here(
        self, store: ObjectStore, todo: Sequence[RollupRef], fresh: bool
    ) -> None:
        """:meth:`from_rollups` in this process: each rollup read and decoded here, written
        in SQLite's thread while the next one is read (``fresh``: the hashes staged)."""
        writing: asyncio.Task[None] | None = None
        try:
            for ref in todo:
                if not fresh:
                    # An index kept up to date has its objects already: the lines are not read.
                    covered = await covered_keys(store, ref)
                    known = await self.db.run(partial(id_store.known, keys=covered or []))
                    if covered and not set(covered) - known:
                        await self.db.run(partial(id_store.store, batch=[], rollup=ref.key))
                        continue
                rows = rows_of(await read_rollup(store, ref))
                if writing is not None:
                    await writing
                # Written in SQLite's thread while the next rollup is read and decoded here.
                writing = asyncio.create_task(self.db.run(id_store.storing(rows, staged=fresh)))
        finally:
            if writing is not None:
                await writing

    async def _rollups_in_workers(self, store: ObjectStore, todo: Sequence[RollupRef]) -> None:
        """:meth:`from_rollups` of a build from nothing with many rollups on more than one
        core: each rollup read here, then checked and hashed in a worker process (spawned:
        a fork of this process, with its event loop's and SQLite's threads, is unsafe) or,
        when every worker is busy, here; written here in the order read. One worker per
        core but one: this process takes its share (a worker is 40 MiB and more of its own).
        Rollups sent ahead and not written when a read fails are dropped: not marked read,
        so the next update reads them again."""
        workers = max(1, _cores() - 1)
        loop = asyncio.get_running_loop()
        ahead: deque[tuple[asyncio.Future[RollupRows], int]] = deque()  # (rows, bytes sent)
        writing: asyncio.Task[None] | None = None

        async def write_next() -> None:
            nonlocal writing
            rows = await ahead.popleft()[0]
            log_unused(rows.key, rows.problems)  # as read_rollup logs it
            if writing is not None:
                await writing
            writing = asyncio.create_task(self.db.run(id_store.storing(rows, staged=True)))

        def busy() -> int:
            return sum(1 for future, sent in ahead if sent and not future.done())

        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=memory.tune)
        try:
            for ref in todo:
                parts = await read_parts(store, ref)
                if isinstance(parts, RollupRead):
                    # Unreadable: nothing to check, nor to log (read_rollup logs a check's).
                    ahead.append((_done(loop, replace(rows_of(parts), problems=[])), 0))
                elif busy() >= workers:
                    # Here, in this thread, while the workers and SQLite's thread work.
                    ahead.append((_done(loop, rollup_rows(ref, *parts)), 0))
                    self.shared += 1
                else:
                    sent = loop.run_in_executor(pool, rollup_rows, ref, *parts)
                    ahead.append((sent, sum(map(len, parts))))
                    self.pooled += 1
                # Written as they are done, in order; waited for past a rollup per worker
                # and one here, or _AHEAD_BYTES sent.
                while ahead and (
                    ahead[0][0].done()
                    or len(ahead) > _AHEAD * workers + 1
                    or sum(n for _, n in ahead) >= _AHEAD_BYTES
                ):
                    await write_next()
            while ahead:
                await write_next()
        finally:
            for future, _ in ahead:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            if writing is not None:
                await writing

    async def add(self, key: str, content: bytes) -> None:
        """Index one manifest object from its bytes (one this process has just written)."""
        await self.db.run(partial(id_store.store, batch=[object_rows(key, content)]))

    async def forget(self, key: str) -> None:
        """Drop a manifest object the storage does not have (an index file that also saw
        another storage): it is not looked for again."""
        await self.db.run(partial(id_store.forget, key=key))

    async def manifests_of(self, ident: str) -> list[str]:
        """The keys of the manifest objects that may hold a line with id ``ident``."""
        wanted = id_hash(normalize_id(ident))
        rows = await self.db.read_now(
            lambda c: c.execute(
                "SELECT m.key FROM id_manifests m WHERE m.id IN "
                "(SELECT manifest FROM id_hashes WHERE hash = ? "
                "UNION SELECT manifest FROM id_hashes_staged WHERE hash = ?) ORDER BY m.key",
                (wanted, wanted),
            ).fetchall()
        )
        return [str(key) for (key,) in rows]


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _done(loop: asyncio.AbstractEventLoop, rows: RollupRows) -> asyncio.Future[RollupRows]:
    """A future already holding ``rows`` (a rollup done in this process, in line with the
    workers' in the writing order)."""
    future: asyncio.Future[RollupRows] = loop.create_future()
    future.set_result(rows)
    return future


def _in_wal_mode(conn: sqlite3.Connection) -> bool:
    """Whether the file is in WAL mode (its readers not stopped by another connection's
    write): IndexDatabase asks for it, a file system may refuse it."""
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    return str(mode).lower() == "wal"
