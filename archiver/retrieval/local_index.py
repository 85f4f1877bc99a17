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
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from contextlib import aclosing
from functools import partial

from archiver.index_db import IndexDatabase
from archiver.manifest.reader import decoded_lines, line_ids, read_objects
from archiver.manifest.rollup_read import covered_keys, list_rollups, read_rollup
from archiver.retrieval import proven_links
from archiver.retrieval.index import normalize_id
from archiver.storage.base import ObjectStore
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
# An id field with a plain string value, as json.dumps writes it.
_ID_FIELD = re.compile(rb'"(?:sip_call_id|cdr_id)"\s*:\s*"([^"\\\n]*)"')
# Keys of a listing checked against the index at once.
_LISTED_AT_ONCE = 10_000
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
    has no ids, adds nothing (``get`` checks the line it serves in full). An
    object as the archiver writes it (no escape, no NUL, each id field a
    plain string) is searched for its ids instead of decoded, a tenth of the
    work; any other is decoded line by line. An id taken from a place
    decoding would not (a nested object, a key given twice, a line that is
    not JSON) only costs a lookup one more read: the index may name too many
    objects, never too few.
    """
    quick = _quick_ids(content)
    if quick is not None:
        return quick
    return {ident for line in decoded_lines(content) for ident in line_ids(line)}


def _quick_ids(content: bytes) -> set[str] | None:
    """The ids of an object found without decoding it, or None when it must be decoded."""
    if b"\\" in content or b"\0" in content:
        return None
    values = _ID_FIELD.findall(content)
    if len(values) != content.count(b'"sip_call_id"') + content.count(b'"cdr_id"'):
        return None  # an id field whose value is not a plain string (a number, null...)
    ids = set()
    for value in set(values):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        ids.add((text if text.isascii() else unicodedata.normalize("NFC", text)).strip())
    ids.discard("")
    return ids


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
        partitions). The listing is taken a slice at a time (memory bounded by
        the slice, not the archive: a million keys held at once were 280 MB).
        """
        if keep is None and MANIFEST_PREFIX in prefixes:
            await self.from_rollups(store)
        added = 0
        for prefix in prefixes:
            listed: list[str] = []
            async for obj in store.list(prefix):
                if keep is None or keep(obj.key):
                    listed.append(obj.key)
                if len(listed) >= _LISTED_AT_ONCE:
                    added += await self.add_new(store, listed, concurrency)
                    listed = []
            added += await self.add_new(store, listed, concurrency)
        return added

    async def add_new(self, store: ObjectStore, keys: Sequence[str], concurrency: int = 16) -> int:
        """Read and index those of ``keys`` not indexed yet; returns how many were added.

        Reading and decoding (this thread) overlap with writing (SQLite's
        thread, which runs without the GIL): one batch is written while the
        next is read.
        """
        known = await self.db.run(partial(_known, keys=keys)) if keys else set()
        new = [key for key in dict.fromkeys(keys) if key not in known]
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

    async def from_rollups(self, store: ObjectStore) -> None:
        """Each rollup not read yet, read once (a checked one gives the ids of the objects
        it covers; one that does not check out leaves them to be read one by one).

        The links a checked rollup holds are kept as hints for the chain walks
        of later ``get``s (:mod:`archiver.retrieval.proven_links`): each row's
        SHA-256 is computed here from the link's bytes, so a walk uses it only
        where the chain it walked records that very SHA-256.
        """
        refs = await list_rollups(store)
        seen = await self.db.run(partial(_known, keys=[r.key for r in refs], table="id_rollups"))
        # A fresh index has none of the objects: their keys are not worth checking first.
        fresh = await self.db.run(_empty)
        writing: asyncio.Task[None] | None = None
        try:
            for ref in refs:
                if ref.key in seen:
                    continue
                if not fresh:
                    # An index kept up to date has its objects already: the lines are not read.
                    covered = await covered_keys(store, ref)
                    known = await self.db.run(partial(_known, keys=covered or []))
                    if covered and not set(covered) - known:
                        await self.db.run(partial(_store, batch=[], rollup=ref.key))
                        continue
                rollup = await read_rollup(store, ref)
                batch = [
                    (k, sorted({id_hash(i) for i in manifest_ids(c)})) for k, c in rollup.objects()
                ]
                hints = [(ref.writer, *link) for link in rollup.links]
                if writing is not None:
                    await writing
                # Written in SQLite's thread while the next rollup is read and decoded here.
                store_it = partial(_store, batch=batch, rollup=ref.key, hints=hints)
                writing = asyncio.create_task(self.db.run(store_it))
        finally:
            if writing is not None:
                await writing

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


def _empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM id_manifests LIMIT 1").fetchone() is None


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
    conn: sqlite3.Connection,
    batch: Sequence[tuple[str, Iterable[int]]],
    rollup: str = "",
    hints: Sequence[tuple[str, int, str, int | None, str | None]] = (),
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
        # A link proven by a walk is never replaced by a hint.
        conn.executemany("INSERT OR IGNORE INTO proven_links VALUES (?, ?, ?, ?, ?)", hints)
        if rollup:  # with its objects: a crash leaves both or neither
            conn.execute("INSERT OR IGNORE INTO id_rollups (key) VALUES (?)", (rollup,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
