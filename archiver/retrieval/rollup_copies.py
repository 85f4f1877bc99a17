"""The checked rollups' copies of their links, on a SQLite table until the chain is walked.

``verify`` takes a link from a checked rollup instead of reading it when the
listing proves the stored link is the rollup's copy
(:mod:`archiver.retrieval.rollup_audit`). The copies are found before the
chain is listed and used while each writer is walked: held as Python bytes by
seq that was about 400 bytes a rolled-up link for the whole walk
(docs/performance.md, "Full verify in bounded memory"), 500 MB at 5 million
calls all rolled up. Here they are rows of the ``rollup_copies`` table on the
connection given (verify's scratch file, the one its chain is walked on;
``:memory:`` for a caller without one), read back a page at a time, joined with
the listing of the chain (``chain_walk``) they are checked against.

:class:`RollupCopies` is also the read-only ``writer -> seq -> bytes`` mapping
``RollupAudit.links`` was (dicts), for the readers that look a copy up by seq.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping

from archiver.retrieval.chain_walk import seqs_in_pages

_SCHEMA = (
    "CREATE TABLE rollup_copies (writer TEXT NOT NULL, seq INTEGER NOT NULL,"
    " body BLOB NOT NULL, PRIMARY KEY (writer, seq)) WITHOUT ROWID"
)
_PAGE = 1000  # rows a query fetches at a time (the LIMIT of the queries below)
# The links listed (chain_walk, same connection) that have a copy: the walk's candidates.
_LISTED = (
    "SELECT c.seq, c.size, c.etag, r.body FROM chain_walk AS c JOIN rollup_copies AS r"
    " ON r.writer = c.writer AND r.seq = c.seq WHERE c.writer = ? AND c.seq > ?"
    " ORDER BY c.seq LIMIT 1000"
)
_SEQS = "SELECT seq FROM rollup_copies WHERE writer = ? AND seq > ? ORDER BY seq LIMIT 1000"
_WRITERS = "SELECT writer FROM rollup_copies WHERE writer > ? ORDER BY writer LIMIT 1"


class RollupCopies(Mapping[str, Mapping[int, bytes]]):
    """Every writer's copies of its links, by seq, on one connection (created on the
    first copy added when none is given: an audit without rollups opens nothing)."""

    def __init__(self, db: sqlite3.Connection | None = None) -> None:
        self._given = db
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._given if self._given is not None else sqlite3.connect(":memory:")
            # Not IF NOT EXISTS: a second audit on one file would mix rows.
            self._db.execute(_SCHEMA)
        return self._db

    def add(self, writer: str, copies: Iterable[tuple[int, bytes]]) -> None:
        """A checked rollup's copies: (seq, the link's bytes); a later copy of a seq
        replaces an earlier one."""
        db = self._connection()
        db.executemany(
            "INSERT OR REPLACE INTO rollup_copies (writer, seq, body) VALUES (?, ?, ?)",
            ((writer, seq, body) for seq, body in copies),
        )
        db.commit()

    def listed(self, writer: str) -> Iterator[tuple[int, int, str | None, bytes]]:
        """(seq, listed size, listed ETag, copy) of each link of ``writer`` both listed
        in the ``chain_walk`` table of the same connection and copied, in seq order,
        a page at a time (writes to ``chain_walk`` between rows are safe)."""
        if self._db is None:
            return
        after = -1
        while True:
            page = self._db.execute(_LISTED, (writer, after)).fetchall()
            if not page:
                return
            for seq, size, etag, body in page:
                yield seq, size, etag, bytes(body)
            after = page[-1][0]

    def clear(self) -> None:
        """Forget every copy (once the chain is walked)."""
        if self._db is not None:
            self._db.execute("DELETE FROM rollup_copies")
            self._db.commit()

    def __getitem__(self, writer: str) -> Mapping[int, bytes]:
        if self._db is None or not isinstance(writer, str):
            raise KeyError(writer)
        found = self._db.execute(
            "SELECT 1 FROM rollup_copies WHERE writer = ? LIMIT 1", (writer,)
        ).fetchone()
        if found is None:
            raise KeyError(writer)
        return WriterCopies(self._db, writer)

    def __iter__(self) -> Iterator[str]:
        """The writers with a copy, in order."""
        if self._db is None:
            return
        after = ""
        while (row := self._db.execute(_WRITERS, (after,)).fetchone()) is not None:
            after = str(row[0])
            yield after

    def __len__(self) -> int:
        return sum(1 for _ in self)


class WriterCopies(Mapping[int, bytes]):
    """seq -> the copy of one writer's link (read-only, valid while the rows are)."""

    def __init__(self, db: sqlite3.Connection, writer: str) -> None:
        self._db = db
        self._writer = writer

    def __getitem__(self, seq: int) -> bytes:
        if not isinstance(seq, int) or not 0 <= seq < 2**63:
            raise KeyError(seq)  # a number SQLite's INTEGER cannot hold: no such row
        row = self._db.execute(
            "SELECT body FROM rollup_copies WHERE writer = ? AND seq = ?", (self._writer, seq)
        ).fetchone()
        if row is None:
            raise KeyError(seq)
        return bytes(row[0])

    def __iter__(self) -> Iterator[int]:
        """The seqs in increasing order, a page at a time."""
        return seqs_in_pages(self._db, _SEQS, self._writer)

    def __len__(self) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM rollup_copies WHERE writer = ?", (self._writer,)
        ).fetchone()
        return int(row[0])
