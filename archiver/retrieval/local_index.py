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
import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import aclosing
from functools import partial

from archiver.index_db import IndexDatabase
from archiver.manifest.reader import decoded_lines, line_ids, read_objects
from archiver.manifest.rollup_read import covered_keys, list_rollups, read_rollup
from archiver.retrieval.index import normalize_id
from archiver.storage.base import ObjectStore
from archiver.storage.layout import MANIFEST_PREFIX

SCHEMA = """
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
"""
# Manifest objects (about 1,000 lines each) written per transaction.
_COMMIT_EVERY = 50
# SQLite's page cache while updating, in KiB: the hash B-tree of a million calls
# (about 40 MB) stays in memory, so its random inserts do not go to the disk.
_CACHE_KIB = 64 * 1024


def id_hash(ident: str) -> int:
    """The signed 64-bit hash of a normalized id (pure; stable across processes)."""
    digest = hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def manifest_ids(content: bytes) -> set[str]:
    """Every normalized sip_call_id and cdr id of a manifest object's lines (pure).

    Only what the index needs is read: a line that is not a JSON object, or
    has no ids, adds nothing (``get`` checks the line it serves in full).
    """
    return {ident for line in decoded_lines(content) for ident in line_ids(line)}


class IdIndex:
    """The id index in ``db`` (a :class:`IndexDatabase` opened with :data:`SCHEMA`): brought up
    to date from the storage, then asked."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

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
        partitions). Reading and decoding (this thread) overlap with writing
        (SQLite's thread, which runs without the GIL): one batch is written
        while the next is read.
        """
        if keep is None and MANIFEST_PREFIX in prefixes:
            await self._from_rollups(store)
        listed = [obj.key for prefix in prefixes async for obj in store.list(prefix)]
        if keep is not None:
            listed = [key for key in listed if keep(key)]
        known = await self.db.run(partial(_known, keys=listed))
        new = [key for key in listed if key not in known]
        added = 0
        pending: list[tuple[str, list[int]]] = []
        writing: asyncio.Task[None] | None = None
        try:
            async with aclosing(read_objects(store, new, concurrency)) as reads:
                async for key, content in reads:
                    if content is None:
                        continue  # gone since the listing: looked at again next time
                    pending.append((key, sorted({id_hash(i) for i in manifest_ids(content)})))
                    added += 1
                    if len(pending) >= _COMMIT_EVERY:
                        if writing is not None:
                            await writing
                        writing = asyncio.create_task(self.db.run(partial(_store, batch=pending)))
                        pending = []
        finally:
            if writing is not None:
                await writing  # a write already in SQLite's hands ends either way
            if pending:
                # Even when a read failed: what was read whole is kept for the next command.
                await self.db.run(partial(_store, batch=pending))
        return added

    async def _from_rollups(self, store: ObjectStore) -> None:
        """Each rollup not read yet, read once (a checked one gives the ids of the objects
        it covers; one that does not check out leaves them to be read one by one)."""
        refs = await list_rollups(store)
        seen = await self.db.run(partial(_known, keys=[r.key for r in refs], table="id_rollups"))
        for ref in refs:
            if ref.key in seen:
                continue
            # An index kept up to date has its objects already: then the lines are not read.
            covered = await covered_keys(store, ref)
            if covered and not set(covered) - await self.db.run(partial(_known, keys=covered)):
                await self.db.run(partial(_store, batch=[], rollup=ref.key))
                continue
            rollup = await read_rollup(store, ref)
            batch = [
                (k, sorted({id_hash(i) for i in manifest_ids(c)})) for k, c in rollup.objects()
            ]
            await self.db.run(partial(_store, batch=batch, rollup=ref.key))

    async def add(self, key: str, content: bytes) -> None:
        """Index one manifest object from its bytes (one this process has just written)."""
        hashes = sorted({id_hash(i) for i in manifest_ids(content)})
        await self.db.run(partial(_store, batch=[(key, hashes)]))

    async def forget(self, key: str) -> None:
        """Drop a manifest object the storage does not have (an index file that also saw
        another storage): it is not looked for again."""
        await self.db.run(partial(_forget, key=key))

    async def manifests_of(self, ident: str) -> list[str]:
        """The keys of the manifest objects that may hold a line with id ``ident``."""
        wanted = id_hash(normalize_id(ident))
        rows = await self.db.read_now(
            lambda c: c.execute(
                "SELECT m.key FROM id_hashes h JOIN id_manifests m ON m.id = h.manifest "
                "WHERE h.hash = ? ORDER BY m.key",
                (wanted,),
            ).fetchall()
        )
        return [str(key) for (key,) in rows]


def _known(conn: sqlite3.Connection, keys: Sequence[str], table: str = "id_manifests") -> set[str]:
    """Which of ``keys`` are indexed (asked in chunks: SQLite bounds a statement's values)."""
    known: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT key FROM {table} WHERE key IN ({marks})", chunk)  # noqa: S608 - a constant, "?"s
        known.update(str(key) for (key,) in rows)
    return known


def _forget(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "DELETE FROM id_hashes WHERE manifest IN (SELECT id FROM id_manifests WHERE key = ?)",
            (key,),
        )
        conn.execute("DELETE FROM id_manifests WHERE key = ?", (key,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _store(
    conn: sqlite3.Connection, batch: Sequence[tuple[str, Iterable[int]]], rollup: str = ""
) -> None:
    conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for key, hashes in batch:
            # Another command may have indexed it meanwhile: then it is done.
            cursor = conn.execute("INSERT OR IGNORE INTO id_manifests (key) VALUES (?)", (key,))
            if cursor.rowcount == 0:
                continue
            manifest = cursor.lastrowid
            conn.executemany(
                "INSERT OR IGNORE INTO id_hashes (hash, manifest) VALUES (?, ?)",
                [(h, manifest) for h in hashes],
            )
        if rollup:  # with its objects: a crash leaves both or neither
            conn.execute("INSERT OR IGNORE INTO id_rollups (key) VALUES (?)", (rollup,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
