"""The manifest objects a ``verify`` reads, listed onto its scratch file.

A full verify lists every manifest object before it reads them, and needs the
listing until every object is read (which ones a checked rollup proves from its
lines, which ones are read one by one). Held as a list of
:class:`~archiver.storage.base.StoredObject` that was about 400 bytes a manifest
object for the whole run (docs/performance.md, "Full verify in bounded
memory"): 0.5 GB at 1.25 million manifest objects. :class:`ListedManifests`
keeps a row each (key, size, ETag: what the readers use) in the scratch file
(:mod:`archiver.retrieval.scratch`) and gives them back in key order a page at a
time; those a rollup proved are marked ``done`` so the rest are read once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from archiver.lone_surrogates import from_bytes, has_surrogate, printable, to_bytes
from archiver.manifest.reader import iter_manifests
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.scratch import open_scratch
from archiver.storage.base import ObjectProof, ObjectStore, StoredObject
from archiver.storage.layout import MANIFEST_PREFIX

# Keys are stored as their UTF-8 bytes (BLOBs, compared byte by byte: the order of their
# code points, as Python sorts them), with lone surrogates kept ("surrogatepass"): a
# local folder lists a file name that is not UTF-8 with them, and SQLite refuses them as
# text. Such a name must be listed (verify names it), not end the command.
_SCHEMA = (
    "CREATE TABLE listed_manifests (key BLOB PRIMARY KEY, full_key BLOB NOT NULL,"
    " size INTEGER NOT NULL, etag TEXT, done INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
)
_ADD = "INSERT OR IGNORE INTO listed_manifests (key, full_key, size, etag) VALUES (?, ?, ?, ?)"
_PAGE = (
    "SELECT key, full_key, size, etag FROM listed_manifests WHERE key > ? ORDER BY key LIMIT 1000"
)
_LEFT = (
    "SELECT key, full_key, size, etag FROM listed_manifests WHERE key > ? AND NOT done"
    " ORDER BY key LIMIT 1000"
)
_GET = "SELECT key, full_key, size, etag FROM listed_manifests WHERE key = ? AND NOT done"
_BATCH = 1000
FOREIGN_KEPT = 10_000


def _object(row: tuple[Any, ...]) -> StoredObject:
    key, full_key, size, etag = row
    return StoredObject(from_bytes(key), from_bytes(full_key), size, proof=ObjectProof(etag=etag))


class ListedManifests:
    """The manifest objects listed (a :class:`~collections.abc.Collection` of
    :class:`StoredObject` with only key, full key, size and ETag), a row each on ``db``."""

    def __init__(self, db: sqlite3.Connection, *, text_only: bool = False) -> None:
        """``text_only``: a key that is not UTF-8 is not listed but counted in
        :attr:`foreign` (the first :data:`FOREIGN_KEPT` kept in :attr:`foreign_keys`):
        what ``verify`` takes (its tables hold keys as text; no archiver writes such a
        name, so it is named as a problem, not read)."""
        self._db = db
        db.execute(_SCHEMA)  # one listing per connection
        self._batch: list[tuple[bytes, bytes, int, str | None]] = []
        self._count = 0
        self._text_only = text_only
        self.foreign = 0
        self.foreign_keys: list[str] = []

    @classmethod
    def of(cls, db: sqlite3.Connection, objects: Iterable[StoredObject]) -> ListedManifests:
        """``objects`` (a listing already made) onto ``db``, as ``verify`` takes them
        (``text_only``)."""
        listed = cls(db, text_only=True)
        for obj in objects:
            listed.add(obj)
        listed.flush()
        return listed

    @classmethod
    def on(cls, db: sqlite3.Connection, objects: Collection[StoredObject]) -> ListedManifests:
        """``objects`` if already listed onto a scratch file, else :meth:`of`."""
        return objects if isinstance(objects, ListedManifests) else cls.of(db, objects)

    def add(self, obj: StoredObject) -> None:
        """One more object listed (call :meth:`flush` after the last)."""
        if self._text_only and has_surrogate(obj.key):
            self.foreign += 1
            if len(self.foreign_keys) < FOREIGN_KEPT:
                self.foreign_keys.append(obj.key)
            return
        self._batch.append((to_bytes(obj.key), to_bytes(obj.full_key), obj.size, obj.proof.etag))
        if len(self._batch) >= _BATCH:
            self.flush()

    def foreign_problems(self) -> list[Problem]:
        """An OUT-OF-CHAIN problem for each key :attr:`foreign` (the first
        :data:`FOREIGN_KEPT`, then one line counting the rest), the key written
        printable."""
        detail = "its name is not UTF-8: no archiver writes one, so it is not read"
        found = [
            Problem(ProblemKind.OUT_OF_CHAIN, printable(key), detail) for key in self.foreign_keys
        ]
        if self.foreign > len(self.foreign_keys):
            more = self.foreign - len(self.foreign_keys)
            found.append(
                Problem(ProblemKind.OUT_OF_CHAIN, MANIFEST_PREFIX, f"{more} more: {detail}")
            )
        return found

    def flush(self) -> None:
        """Store the objects added so far."""
        if self._batch:
            self._count += self._db.executemany(_ADD, self._batch).rowcount
        self._batch = []
        self._db.commit()

    def __len__(self) -> int:
        return self._count

    def __contains__(self, obj: object) -> bool:
        key = obj.key if isinstance(obj, StoredObject) else obj
        if not isinstance(key, str):
            return False
        found = self._db.execute("SELECT 1 FROM listed_manifests WHERE key = ?", (to_bytes(key),))
        return found.fetchone() is not None

    def _pages(self, query: str) -> Iterator[StoredObject]:
        after = b""
        while True:
            page = self._db.execute(query, (after,)).fetchall()
            if not page:
                return
            for row in page:
                yield _object(row)
            after = page[-1][0]

    def __iter__(self) -> Iterator[StoredObject]:
        """Every object listed, in key order (a page of rows at a time)."""
        return self._pages(_PAGE)

    def get(self, key: str) -> StoredObject | None:
        """The object listed under ``key`` and not yet :meth:`done`; None otherwise."""
        row = self._db.execute(_GET, (to_bytes(key),)).fetchone()
        return None if row is None else _object(row)

    def done(self, key: str) -> None:
        """``key`` was read (from a rollup's lines): :meth:`left` no longer gives it."""
        self._db.execute("UPDATE listed_manifests SET done = 1 WHERE key = ?", (to_bytes(key),))

    def left(self) -> Iterator[StoredObject]:
        """The objects not :meth:`done`, in key order (a page of rows at a time)."""
        return self._pages(_LEFT)

    def take(self, key: str) -> bool:
        """True if ``key`` is listed and not yet :meth:`done`; it is done now (a reader
        through rollups, :class:`archiver.manifest.rollup_read.ToRead`)."""
        taken = self._db.execute(
            "UPDATE listed_manifests SET done = 1 WHERE key = ? AND NOT done", (to_bytes(key),)
        )
        return taken.rowcount == 1

    @property
    def db(self) -> sqlite3.Connection:
        """The scratch file the listing is on (a command may keep more tables on it)."""
        return self._db


async def list_into(
    db: sqlite3.Connection,
    store: ObjectStore,
    since: datetime | None,
    until: datetime | None,
    tz: tzinfo,
    *,
    text_only: bool = False,
) -> ListedManifests:
    """The manifest objects of the partitions [since, until) needs, listed onto ``db`` as
    the listing goes (:func:`~archiver.manifest.reader.list_manifests`, a row each).
    ``text_only``: see :class:`ListedManifests`."""
    listed = ListedManifests(db, text_only=text_only)
    async for obj in iter_manifests(store, since, until, tz):
        listed.add(obj)
    listed.flush()
    return listed


@contextlib.asynccontextmanager
async def listed_on_scratch(
    store: ObjectStore,
    since: datetime | None,
    until: datetime | None,
    tz: tzinfo,
    scratch_dir: Path | None,
    name: str,
) -> AsyncIterator[ListedManifests]:
    """:func:`list_into` a scratch file of its own (``ARCHIVER_SCRATCH_DIR``), removed
    at exit: what ``search``, ``subject`` and ``export`` list ``manifests/`` with, so
    a five-year listing (1.2 million objects at 5 million calls in the service's
    shape, about 0.5 GB as objects in memory) costs a page of rows."""
    with open_scratch(scratch_dir, name) as db:
        yield await list_into(db, store, since, until, tz)
