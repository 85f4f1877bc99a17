"""Each writer's chain as ``verify`` walks it, on a SQLite table instead of Python dicts.

Walking a writer's chain needs, for every link, what the listing says of it
(its size and ETag: a rollup's copy is proven from them), the link parsed with
its SHA-256 (or what is wrong with it), and at the end which links the walk
back from the head reached and vouched for. Held as Python objects that was
about 2 KB a link while the writer was walked (docs/performance.md, "Full
verify in bounded memory"): 1.2 GB for a writer of 600,000 links. Here it is
one row per link of the ``chain_walk`` table on the connection given (verify's
scratch file; ``:memory:`` for a caller without one), read back a page at a
time in seq order; the checks that need the link a link names are joins.

What the walk vouched for stays in the table: :class:`WalkTable` is the
read-only ``seq -> link SHA-256`` mapping of ``ChainState.walks`` the witness,
history, timestamp and rollup checks read, valid while the connection is open.

The messages and the order of the problems are the chain audit's
(:mod:`archiver.retrieval.chain_audit`); this module only stores and queries.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from archiver.manifest.chain import MAX_COUNT, Head, Link

_SCHEMA = (
    "CREATE TABLE chain_walk (writer TEXT NOT NULL, seq INTEGER NOT NULL,"
    # The listing: the stored link's size and ETag.
    " size INTEGER NOT NULL, etag TEXT,"
    # The link read: its SHA-256 and fields, or what is wrong with it.
    " sha256 TEXT, error TEXT, l_writer TEXT, l_seq INTEGER, manifest_key TEXT,"
    " manifest_sha256 TEXT, manifest_size INTEGER, lines INTEGER, prev_seq INTEGER,"
    " prev_sha256 TEXT,"
    # good: read, and the link it says it is; on_walk: reached from the head; vouched:
    # on the walk with the bytes its successor (or the head) names.
    " good INTEGER NOT NULL DEFAULT 0, on_walk INTEGER NOT NULL DEFAULT 0,"
    " vouched INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (writer, seq)) WITHOUT ROWID"
)
_PAGE = 1000  # rows a query fetches at a time (the LIMIT of the queries below)
_LISTED = (
    "SELECT seq, size, etag FROM chain_walk WHERE writer = ? AND seq > ? ORDER BY seq LIMIT 1000"
)
_UNREAD = (
    "SELECT seq FROM chain_walk WHERE writer = ? AND seq > ? AND sha256 IS NULL"
    " AND error IS NULL ORDER BY seq LIMIT 1000"
)
_TAKE = (
    "UPDATE chain_walk SET sha256 = ?, l_writer = ?, l_seq = ?, manifest_key = ?,"
    " manifest_sha256 = ?, manifest_size = ?, lines = ?, prev_seq = ?, prev_sha256 = ?"
    " WHERE writer = ? AND seq = ?"
)
_READ = (
    "SELECT seq, error, sha256, l_writer, l_seq, manifest_key, manifest_sha256, manifest_size,"
    " lines, prev_seq, prev_sha256 FROM chain_walk WHERE writer = ? AND seq > ?"
    " ORDER BY seq LIMIT 1000"
)
_PREDECESSORS = (
    "SELECT c.seq, c.prev_seq, c.prev_sha256, p.seq, p.sha256 FROM chain_walk AS c"
    " LEFT JOIN chain_walk AS p ON p.writer = c.writer AND p.seq = c.prev_seq AND p.good"
    " WHERE c.writer = ? AND c.seq > ? AND c.good AND c.prev_seq IS NOT NULL"
    " ORDER BY c.seq LIMIT 1000"
)
_GOOD = (
    "SELECT sha256, l_writer, l_seq, manifest_key, manifest_sha256, manifest_size, lines,"
    " prev_seq, prev_sha256 FROM chain_walk WHERE writer = ? AND seq = ? AND good"
)
_ON_WALK = (
    "WITH RECURSIVE walk(seq) AS (VALUES (?) UNION SELECT c.prev_seq FROM chain_walk AS c"
    " JOIN walk ON c.writer = ? AND c.seq = walk.seq AND c.good WHERE c.prev_seq IS NOT NULL)"
    " UPDATE chain_walk SET on_walk = 1 WHERE writer = ? AND good"
    " AND seq IN (SELECT seq FROM walk)"
)
_WALK_DOWN = (
    "SELECT seq, sha256, prev_sha256 FROM chain_walk WHERE writer = ? AND seq <= ?"
    " AND on_walk ORDER BY seq DESC LIMIT 1000"
)
_OFF_WALK = (
    "SELECT seq, l_writer, l_seq, manifest_key, manifest_sha256, manifest_size, lines,"
    " prev_seq, prev_sha256 FROM chain_walk WHERE writer = ? AND seq > ? AND good"
    " AND NOT on_walk ORDER BY seq LIMIT 1000"
)
_VOUCHED = (
    "SELECT seq FROM chain_walk WHERE writer = ? AND seq > ? AND vouched ORDER BY seq LIMIT 1000"
)


def _link(row: tuple[Any, ...]) -> Link:
    writer, seq, key, sha, size, lines, prev_seq, prev_sha = row
    return Link(sys.intern(writer), seq, key, sha, size, lines, prev_seq, prev_sha)


class ChainWalks:
    """Every writer's links on ``db`` (one table; one :class:`ChainWalks` per connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(_SCHEMA)  # not IF NOT EXISTS: a second walk on one file would mix rows
        self._listed: list[tuple[str, int, int, str | None]] = []

    def add_listed(self, writer: str, seq: int, size: int, etag: str | None) -> None:
        """A link the listing found (a later listing of the same seq replaces it)."""
        self._listed.append((writer, seq, size, etag))
        if len(self._listed) >= _PAGE:
            self.listed_all()

    def listed_all(self) -> None:
        """Store the links listed so far (call once the listing is done)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO chain_walk (writer, seq, size, etag) VALUES (?, ?, ?, ?)",
            self._listed,
        )
        self._listed = []
        self.db.commit()

    def _pages(self, query: str, writer: str, after: int = -1) -> Iterator[tuple[Any, ...]]:
        """The rows of ``query`` (its first column the seq, ``seq > ?`` its last
        parameter, ordered by seq), fetched a page at a time: writes between pages
        are safe, and no more than a page is held."""
        while True:
            page: list[tuple[Any, ...]] = self.db.execute(query, (writer, after)).fetchall()
            if not page:
                return
            yield from page
            after = page[-1][0]

    def listed(self, writer: str) -> Iterator[tuple[int, int, str | None]]:
        """(seq, size, ETag) of each listed link of ``writer``, in seq order."""
        yield from self._pages(_LISTED, writer)

    def unread(self, writer: str) -> Iterator[int]:
        """The seqs of ``writer``'s links neither read nor taken yet, in seq order."""
        for (seq,) in self._pages(_UNREAD, writer):
            yield seq

    def take(self, writer: str, seq: int, got: tuple[Link, str] | str) -> None:
        """The link read (with its SHA-256), or what is wrong with it."""
        if isinstance(got, str):
            self.db.execute(
                "UPDATE chain_walk SET error = ? WHERE writer = ? AND seq = ?", (got, writer, seq)
            )
            return
        link, sha = got
        self.db.execute(
            _TAKE,
            (
                sha,
                link.writer,
                link.seq,
                link.manifest_key,
                link.manifest_sha256,
                link.manifest_size,
                link.lines,
                link.prev_seq,
                link.prev_sha256,
                writer,
                seq,
            ),
        )

    def read(self, writer: str, vanished: str) -> Iterator[tuple[int, Link | str, str]]:
        """Every listed link of ``writer`` in seq order, once all are taken: (seq, the link
        or what is wrong with it, its SHA-256); one never taken is ``vanished``. The
        links that are the link their key says are marked good."""
        self.db.execute(
            "UPDATE chain_walk SET error = ? WHERE writer = ? AND sha256 IS NULL AND error IS NULL",
            (vanished, writer),
        )
        self.db.execute(
            "UPDATE chain_walk SET good = 1 WHERE writer = ? AND error IS NULL"
            " AND l_writer = writer AND l_seq = seq",
            (writer,),
        )
        self.db.commit()
        for row in self._pages(_READ, writer):
            seq, error, sha = row[:3]
            if error is not None:
                yield seq, str(error), ""
            else:
                yield seq, _link(row[3:]), str(sha)

    def predecessors(self, writer: str) -> Iterator[tuple[int, int, str, int | None, str | None]]:
        """Each good link of ``writer`` that names a predecessor, in seq order: (seq,
        prev_seq, prev_sha256, and the good link prev_seq's seq and SHA-256, or None)."""
        yield from self._pages(_PREDECESSORS, writer)

    def any_good(self, writer: str) -> bool:
        """Whether ``writer`` has a good link."""
        found = self.db.execute(
            "SELECT 1 FROM chain_walk WHERE writer = ? AND good LIMIT 1", (writer,)
        )
        return found.fetchone() is not None

    def firsts(self, writer: str) -> list[int]:
        """The seqs of the good links of ``writer`` that start a chain (none before them)."""
        rows = self.db.execute(
            "SELECT seq FROM chain_walk WHERE writer = ? AND good AND prev_seq IS NULL"
            " ORDER BY seq",
            (writer,),
        )
        return [seq for (seq,) in rows]

    def good(self, writer: str, seq: int) -> tuple[Link, str] | None:
        """``writer``'s good link ``seq`` with its SHA-256; None if there is none."""
        if not 0 <= seq <= MAX_COUNT:
            return None  # a head's number no link can have
        row = self.db.execute(
            _GOOD,
            (writer, seq),
        ).fetchone()
        return None if row is None else (_link(row[1:]), row[0])

    def walk_back(self, writer: str, head: Head) -> WalkTable:
        """Walk back from the head (``head.seq``, a good link) by each link's prev_seq, as
        far as good links go: those reached are on the walk. Those the head vouches for,
        going down the walk's seqs from the highest, until the first whose SHA-256 is not
        the one its successor (for the highest: the head) names: the walk returned."""
        self.db.execute(_ON_WALK, (head.seq, writer, writer))
        expected: str | None = head.link_sha256
        below: int | None = None  # the first seq the head does not vouch for
        after = MAX_COUNT
        vouched = 0
        while below is None:
            page = self.db.execute(_WALK_DOWN, (writer, after)).fetchall()
            if not page:
                break
            for seq, sha, prev_sha in page:
                if sha != expected:
                    below = seq
                    break
                vouched += 1
                expected = prev_sha
            after = page[-1][0] - 1
        self.db.execute(
            "UPDATE chain_walk SET vouched = 1 WHERE writer = ? AND on_walk AND seq > ?",
            (writer, -1 if below is None else below),
        )
        self.db.commit()
        return WalkTable(self.db, writer, vouched)

    def off_walk(self, writer: str) -> Iterator[Link]:
        """``writer``'s good links the walk back from the head did not reach, in seq order."""
        for row in self._pages(_OFF_WALK, writer):
            yield _link(row[1:])


class WalkTable(Mapping[int, str]):
    """seq -> link SHA-256 of the links the walk of ``writer`` vouched for (read-only)."""

    def __init__(self, db: sqlite3.Connection, writer: str, count: int) -> None:
        self._db = db
        self._writer = writer
        self._count = count

    def __getitem__(self, seq: int) -> str:
        if not 0 <= seq <= MAX_COUNT:
            raise KeyError(seq)  # a number no link can have
        row = self._db.execute(
            "SELECT sha256 FROM chain_walk WHERE writer = ? AND seq = ? AND vouched",
            (self._writer, seq),
        ).fetchone()
        if row is None:
            raise KeyError(seq)
        return str(row[0])

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        try:
            self[seq]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[int]:
        """The seqs in increasing order, a page at a time."""
        return seqs_in_pages(self._db, _VOUCHED, self._writer)

    def __len__(self) -> int:
        return self._count


def seqs_in_pages(db: sqlite3.Connection, query: str, writer: str) -> Iterator[int]:
    """A writer's seqs in increasing order from ``query`` (``writer = ? AND seq > ? ORDER BY
    seq LIMIT n``), a page at a time."""
    after = -1
    while True:
        page = db.execute(query, (writer, after)).fetchall()
        if not page:
            return
        for (seq,) in page:
            yield seq
        after = page[-1][0]
