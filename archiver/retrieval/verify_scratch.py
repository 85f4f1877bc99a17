"""What a ``verify`` remembers of every manifest object and call line, on its scratch file.

A full verify reads every call line once, and must still know at the end
which manifest objects it read (the chain's links not read are MISSING) and
which calls have more than one line (DUPLICATE). Held in Python, that was
several KB a call for the whole run; here it is a few rows of the scratch
SQLite file (:mod:`archiver.retrieval.scratch`) and a bounded page cache.

Duplicates without holding the lines: each line read is one row (a 64-bit
hash of its call, the manifest object's number, the line's number). At the
end the hashes seen more than once give the candidate lines; only their
manifest objects are read again, and the candidates' real entries go to
:class:`~archiver.retrieval.duplicates.CallLines`, which compares the calls
exactly and judges them as it always has (which line stands, which
supersede record counts). A hash collision therefore only costs a re-read:
it never makes a DUPLICATE of two different calls. Memory: O(candidates).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import Manifest, parse_manifest, read_objects
from archiver.manifest.supersede import Supersession
from archiver.retrieval.duplicates import CallLines, Identity
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.storage.base import ObjectStore

IdentityHash = Callable[[Identity], int]

# Rows are committed every this many manifest objects (no journal: a commit is cheap,
# and it keeps the dirty pages of one transaction from piling up in the cache).
_COMMIT_EVERY = 512

_SCHEMA = (
    # One row per manifest object read: its number, key, SHA-256 and latest archived_at.
    "CREATE TABLE manifests (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
    "sha256 TEXT NOT NULL, archived TEXT)",
    # One row per call line read in the range; kept in hash order, so the calls seen
    # twice are found by one ordered scan (no sort, no temporary file).
    "CREATE TABLE lines (h INTEGER NOT NULL, m INTEGER NOT NULL, n INTEGER NOT NULL, "
    "PRIMARY KEY (h, m, n)) WITHOUT ROWID",
)


def identity_hash(identity: Identity) -> int:
    """A signed 64-bit hash of a call (provider, cdr id): SQLite's INTEGER (pure)."""
    provider, cdr_id = identity
    digest = hashlib.blake2b(f"{provider}\x1f{cdr_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class VerifyScratch:
    """The manifest objects and call lines a verify has read, on ``db`` (a scratch file).

    ``hasher``: the call's 64-bit hash (injectable, so that a test can force
    every call onto one hash and see collisions change nothing).
    """

    def __init__(self, db: sqlite3.Connection, hasher: IdentityHash = identity_hash) -> None:
        self.db = db
        self._hash = hasher
        self._next = 0
        for statement in _SCHEMA:
            db.execute(statement)

    def read(self, manifest: Manifest, archived: datetime | None) -> int | None:
        """Remember that ``manifest`` was read (with its latest archived_at); its number, or
        None when this key was already read once (its lines are not counted twice)."""
        if manifest.sha256 is None:
            return None
        self._next += 1
        stored = archived.isoformat() if archived is not None else None
        changed = self.db.execute(
            "INSERT OR IGNORE INTO manifests VALUES (?, ?, ?, ?)",
            (self._next, manifest.key, manifest.sha256, stored),
        ).rowcount
        if self._next % _COMMIT_EVERY == 0:
            self.db.commit()
        return self._next if changed else None

    def lines(self, number: int, calls: Iterable[tuple[ManifestEntry, int]]) -> None:
        """Remember the call lines (entry, line number) of manifest object ``number``."""
        self.db.executemany(
            "INSERT OR IGNORE INTO lines VALUES (?, ?, ?)",
            [(self._hash(call.identity), number, line) for call, line in calls],
        )

    def __contains__(self, key: object) -> bool:
        """Whether the manifest object ``key`` was read."""
        found = self.db.execute("SELECT 1 FROM manifests WHERE key = ?", (key,)).fetchone()
        return found is not None

    def archived(self) -> Iterator[tuple[str, datetime]]:
        """(key, latest archived_at) of every manifest object read that has one, by key."""
        rows = self.db.execute(
            "SELECT key, archived FROM manifests WHERE archived IS NOT NULL ORDER BY key"
        )
        for key, moment in rows:
            yield key, datetime.fromisoformat(moment)

    def candidates(self) -> dict[int, set[int]]:
        """Manifest number -> line numbers of every line whose call's hash was seen twice."""
        found: dict[int, set[int]] = {}
        rows = self.db.execute(
            "SELECT l.m, l.n FROM (SELECT h FROM lines GROUP BY h HAVING count(*) > 1) AS twice "
            "JOIN lines AS l ON l.h = twice.h"
        )
        for manifest, line in rows:
            found.setdefault(manifest, set()).add(line)
        return found

    async def duplicates(
        self, store: ObjectStore, records: Iterable[Supersession], *, whole: bool
    ) -> tuple[list[Problem], int]:
        """DUPLICATE and SUPERSEDE problems and the lines superseded, as
        :meth:`CallLines.duplicates` finds them over every line read (the candidates'
        manifest objects read again: one read each)."""
        wanted = self.candidates()
        held = CallLines()
        problems: list[Problem] = []
        keys: dict[str, tuple[str, set[int]]] = {}
        for number, numbers in wanted.items():
            key, sha = self.db.execute(
                "SELECT key, sha256 FROM manifests WHERE id = ?", (number,)
            ).fetchone()
            keys[key] = (sha, numbers)
        async for key, content in read_objects(store, sorted(keys)):
            sha, numbers = keys[key]
            manifest = parse_manifest(key, content) if content is not None else None
            if manifest is None or manifest.sha256 != sha:
                problems.append(_changed(key, sha, manifest))
                continue
            for call, line in zip(manifest.calls, manifest.numbers, strict=True):
                if line in numbers:
                    held.add(call, (key, line))
        found, superseded = held.duplicates(records, whole=whole)
        return problems + found, superseded


class ArchivedTimes(Mapping[str, datetime]):
    """Manifest key -> latest archived_at of each manifest object read that has one: the
    ``manifests`` rows of ``db`` (read-only; valid while the scratch file is open)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __getitem__(self, key: str) -> datetime:
        row = self._db.execute(
            "SELECT archived FROM manifests WHERE key = ? AND archived IS NOT NULL", (key,)
        ).fetchone()
        if row is None:
            raise KeyError(key)
        return datetime.fromisoformat(row[0])

    def __iter__(self) -> Iterator[str]:
        """The keys in order, a page at a time."""
        after = ""
        while page := self._db.execute(
            "SELECT key FROM manifests WHERE key > ? AND archived IS NOT NULL"
            " ORDER BY key LIMIT 1000",
            (after,),
        ).fetchall():
            yield from (key for (key,) in page)
            after = page[-1][0]

    def __len__(self) -> int:
        found = self._db.execute("SELECT COUNT(*) FROM manifests WHERE archived IS NOT NULL")
        return int(found.fetchone()[0])


def _changed(key: str, sha: str, manifest: Manifest | None) -> Problem:
    now = "gone" if manifest is None else f"SHA-256 {manifest.sha256}"
    return Problem(
        ProblemKind.MANIFEST_ALTERED,
        key,
        f"changed while verify ran (read with SHA-256 {sha}, now {now}): "
        "its second call lines could not be read again; run verify again",
    )
