"""Bringing the console's index up to date: only what it has not read yet, in bounded memory.

Manifest objects are written once and never changed, so a key already
indexed is done. An update walks the listing of ``manifests/`` a page at a
time (memory does not grow with the archive), asks the index which keys of
the page it has, and reads only the others. Reading (this thread, many
requests at once), preparing rows (:func:`archiver.console.loading.prepare`)
and writing (SQLite's thread, which runs without the GIL) overlap: one batch
is written while the next is read.

Rollups (:mod:`archiver.manifest.rollup_read`) come first: each is read once
(and remembered), its covered objects indexed from its lines under their own
keys when it checks out, so the listing's pass then finds them indexed. A
build from nothing drops the calls' secondary indexes and makes them once at
the end: sorting once is several times quicker than a random write per row.
A large build from nothing may also prepare its lines in worker processes
(:class:`_Preparing`, ``ARCHIVER_CONSOLE__INDEX_WORKERS``): preparing is most
of a build's CPU, and it is pure.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial

from archiver.console import loading
from archiver.index_db import IndexDatabase
from archiver.manifest import rollup_read
from archiver.manifest.reader import read_objects
from archiver.storage.base import ObjectStore
from archiver.storage.layout import MANIFEST_PREFIX

log = logging.getLogger("archiver.console")

# Manifest objects prepared per transaction (service objects hold ~4 lines, backfill
# ones ~1,000: the lines per commit decide the cost, so both bounds apply).
_COMMIT_OBJECTS = 200
_COMMIT_LINES = 20_000
# Listed keys asked of the index at once: the memory of an update.
_PAGE = 1000
# A build from nothing given workers moves its preparing to them once it has prepared
# this many lines itself (a small archive never starts a process), each worker with at
# most _AHEAD manifest objects sent ahead of the writer (the memory they hold).
POOL_AFTER_LINES = 50_000
_AHEAD = 4


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What an update read."""

    manifests: int
    lines: int
    bad_lines: int


class _Writer:
    """Batches of prepared manifests, each written while the next is prepared."""

    def __init__(self, db: IndexDatabase, *, bulk: bool) -> None:
        self.db = db
        self.bulk = bulk
        self.pending: list[loading.Prepared] = []
        self.lines = 0
        self.writing: asyncio.Task[None] | None = None
        self.manifests = self.total_lines = self.bad = 0

    async def add(self, prepared: loading.Prepared) -> None:
        self.pending.append(prepared)
        self.lines += prepared.lines
        if prepared.read:
            self.manifests += 1
            self.total_lines += prepared.lines
        self.bad += len(prepared.bad_lines)
        if len(self.pending) >= _COMMIT_OBJECTS or self.lines >= _COMMIT_LINES:
            await self.flush(wait=False)

    async def flush(self, *, wait: bool = True) -> None:
        if self.writing is not None:
            await self.writing
            self.writing = None
        if self.pending:
            batch, self.pending, self.lines = self.pending, [], 0
            self.writing = asyncio.create_task(
                self.db.run(partial(loading.store, batch=batch, bulk=self.bulk))
            )
        if wait and self.writing is not None:
            await self.writing
            self.writing = None


class _Preparing:
    """Manifest objects prepared (:func:`loading.prepare`) and handed to the writer in the
    order they were read: in this thread, or in ``workers`` processes (if any) for a
    build from nothing past :data:`POOL_AFTER_LINES` lines."""

    def __init__(self, writer: _Writer, *, workers: int) -> None:
        self.writer = writer
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        # Each object sent ahead with its bytes: prepared here if the workers fail.
        self.ahead: deque[tuple[str, bytes | None, asyncio.Future[loading.Prepared]]] = deque()

    async def add(self, key: str, content: bytes | None) -> None:
        if self.pool is None and self.workers > 0 and self.writer.total_lines >= POOL_AFTER_LINES:
            # spawn: a fork of this process (threads: the event loop's, SQLite's) is unsafe.
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context)
        if self.pool is not None:
            loop = asyncio.get_running_loop()
            try:
                sent = loop.run_in_executor(self.pool, loading.prepare, key, content)
            except BrokenProcessPool as exc:
                self._without_workers(exc)
            else:
                self.ahead.append((key, content, sent))
                while len(self.ahead) > _AHEAD * self.workers:
                    await self._next()
                return
        await self.drain()  # the order read is kept
        await self.writer.add(loading.prepare(key, content))

    async def _next(self) -> None:
        key, content, sent = self.ahead.popleft()
        try:
            prepared = await sent
        except BrokenProcessPool as exc:
            self._without_workers(exc)
            prepared = loading.prepare(key, content)
        await self.writer.add(prepared)

    def _without_workers(self, exc: BaseException) -> None:
        """The workers could not start or died (a program importing this one without a
        ``__main__`` guard, a worker killed): the rest of the build prepares here."""
        if self.pool is not None:
            log.warning(
                "console index: its worker processes failed (%s): the build goes on in this "
                "process",
                exc,
            )
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        self.workers = 0

    async def drain(self) -> None:
        """Hand every object sent ahead to the writer."""
        while self.ahead:
            await self._next()

    def close(self) -> None:
        """Stop the workers; objects not drained (an update that failed) are dropped: they
        are not indexed, so the next update reads them again."""
        for _, _, sent in self.ahead:
            sent.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


async def _new_keys(db: IndexDatabase, store: ObjectStore) -> AsyncGenerator[list[str], None]:
    """Pages of the listed manifest keys the index has not read."""
    page: list[str] = []
    async for obj in store.list(MANIFEST_PREFIX):
        page.append(obj.key)
        if len(page) >= _PAGE:
            yield await _unknown(db, page)
            page = []
    if page:
        yield await _unknown(db, page)


async def _unknown(db: IndexDatabase, keys: Sequence[str]) -> list[str]:
    have = await db.run(partial(loading.known, keys=keys))
    return [key for key in keys if key not in have]


async def _from_rollups(db: IndexDatabase, store: ObjectStore, preparing: _Preparing) -> None:
    """Each rollup not read yet, read once: its objects the index has not read are indexed
    from its lines when it checks out (else they are read one by one, like any other)."""
    refs = await rollup_read.list_rollups(store)
    seen = await db.run(partial(loading.known, keys=[r.key for r in refs], table="rollups_read"))
    for ref in refs:
        if ref.key in seen:
            continue
        # An index kept up to date has its objects already: then the lines are not read.
        covered = await rollup_read.covered_keys(store, ref)
        if covered and not set(covered) - await db.run(partial(loading.known, keys=covered)):
            await db.run(partial(loading.rollup_read, key=ref.key, usable=True))
            continue
        rollup = await rollup_read.read_rollup(store, ref)
        keys = [key for key, _, _ in rollup.slices]
        have = await db.run(partial(loading.known, keys=keys))
        for key, content in rollup.objects():
            if key not in have:
                await preparing.add(key, content)
        await preparing.drain()
        await preparing.writer.flush()  # its objects committed before the rollup is marked read
        await db.run(partial(loading.rollup_read, key=ref.key, usable=rollup.usable))


async def update(
    db: IndexDatabase, store: ObjectStore, concurrency: int = 8, workers: int = 0
) -> Refreshed:
    """Index every manifest object not indexed yet: from the rollups first, then the
    small objects no rollup gave (``workers``: processes that prepare the lines of a
    build from nothing; 0: none)."""
    bulk = await db.run(loading.start_bulk)
    writer = _Writer(db, bulk=bulk)
    preparing = _Preparing(writer, workers=workers if bulk else 0)
    try:
        await _from_rollups(db, store, preparing)
        async with aclosing(_new_keys(db, store)) as pages:
            async for keys in pages:
                async with aclosing(read_objects(store, keys, concurrency)) as reads:
                    async for key, content in reads:
                        await preparing.add(key, content)
        await preparing.drain()
    finally:
        preparing.close()
        # What was read whole and prepared is kept, even when a read failed.
        await writer.flush()
        if bulk:
            await db.run(loading.finish_load)
    if writer.manifests:
        # debug: get and hold refresh it too, and their stderr is one line.
        log.debug(
            "console index: %d manifest(s), %d line(s) added", writer.manifests, writer.total_lines
        )
    return Refreshed(writer.manifests, writer.total_lines, writer.bad)
