"""The chain links ``get`` has proven, kept in its local index for the next command.

Proving a line walks its writer's chain back from the head to the line's
link (:mod:`archiver.retrieval.proof`): for an old call in a large archive,
a read per link in between. The links proven are kept in the local index's
SQLite file (``ARCHIVER_CONSOLE__INDEX_PATH``), on the auditor's machine and
out of the storage's reach, so the next ``get`` reads only the links written
since. A kept link is used only where a link proven in this walk records its
very SHA-256: a rewritten chain is walked again, never trusted from here.
Losing the file costs reads, nothing else; a file that cannot be opened (or
is busy) is left alone.

The rows are looked up as a walk needs them (:class:`KeptLinks`: a page of
1,024 links of one writer at a time, a few pages held), never loaded whole:
after a few ``get``s of old calls the table holds every link of the archive
(520 bytes a link in a dict, 650 MB at five million calls). A row may also
come from a checked rollup's copy of a link (:mod:`archiver.retrieval.local_index`):
its SHA-256 is computed here from the link's bytes, so it too is used only
where the chain walked records that SHA-256.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from archiver.index_db import IndexDatabase
from archiver.retrieval.proof import ProvenLink

log = logging.getLogger("archiver.get")

SCHEMA = """
CREATE TABLE IF NOT EXISTS proven_links (
    writer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    prev_seq INTEGER,
    prev_sha256 TEXT,
    PRIMARY KEY (writer, seq)
) WITHOUT ROWID;
"""
Kept = dict[tuple[str, int], ProvenLink]
# The walk over kept rows: each step to the row of the seq and SHA-256 the one above records
# (strictly down: a row naming itself or a later link as its predecessor stops it).
_REACH = """
WITH RECURSIVE walk(seq, sha) AS (
    VALUES (?, ?)
    UNION ALL
    SELECT p.prev_seq, p.prev_sha256 FROM walk JOIN proven_links p
        ON p.writer = ?3 AND p.seq = walk.seq AND p.sha256 = walk.sha
    WHERE walk.seq > ?4 AND p.prev_seq IS NOT NULL AND p.prev_seq < walk.seq
)
SELECT seq, sha FROM walk ORDER BY seq LIMIT 1
"""
_RETRY_OPEN_S = 60.0
KEEP_BUSY_MS = 2000
# Links of one writer read from the file at once (a walk's read-ahead), and pages held.
PAGE = 1024
_PAGES_HELD = 8


class KeptLinks(Mapping[tuple[str, int], ProvenLink]):
    """The links kept in the file at ``path``, read a page at a time as they are asked for
    (none when the file cannot be read). Lookups run on the caller's thread: a page is an
    indexed range of one writer's rows, about a millisecond."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: IndexDatabase | None = None
        self._closed_until = 0.0  # a file that could not be opened: tried again after this
        self._pages: OrderedDict[tuple[str, int], dict[int, ProvenLink]] = OrderedDict()

    def _open(self) -> IndexDatabase | None:
        """The file, opened on first use; None while it cannot be (busy, or not a
        database): tried again a minute later, not never (a console runs for months)."""
        if self._db is None and time.monotonic() >= self._closed_until:
            try:
                self._db = IndexDatabase(self._path, SCHEMA)
                # A write waits this long for the console's indexing, then is given up.
                self._db.run_now(lambda c: c.execute(f"PRAGMA busy_timeout = {KEEP_BUSY_MS:d}"))
            except sqlite3.Error as exc:
                log.debug("proven links not opened in %s: %s", self._path, exc)
                self._closed_until = time.monotonic() + _RETRY_OPEN_S
        return self._db

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query ([] when the file cannot be read)."""
        db = self._open()
        if db is None:
            return []
        try:
            return db.run_now(lambda c: c.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            log.debug("proven links not read from %s: %s", self._path, exc)
            return []

    def _page(self, writer: str, number: int) -> dict[int, ProvenLink]:
        page = self._pages.get((writer, number))
        if page is not None:
            self._pages.move_to_end((writer, number))
            return page
        rows = self._rows(
            "SELECT seq, sha256, prev_seq, prev_sha256 FROM proven_links "
            "WHERE writer = ? AND seq >= ? AND seq < ?",
            (writer, number * PAGE, (number + 1) * PAGE),
        )
        page = {
            int(q): ProvenLink(str(h), None if p is None else int(p), ps) for q, h, p, ps in rows
        }
        self._pages[(writer, number)] = page
        while len(self._pages) > _PAGES_HELD:
            self._pages.popitem(last=False)
        return page

    def reach(self, writer: str, seq: int, sha256: str, lowest: int) -> tuple[int, str]:
        """Walk ``writer``'s kept links down from link ``seq`` (whose SHA-256 the chain records
        as ``sha256``), each step only to a row whose SHA-256 is the one the row above
        records, while above ``lowest``; the (seq, SHA-256) where it stops: at or below
        ``lowest``, or where no kept row continues (the walk reads the storage from there).
        One query (a recursive step is an index lookup in SQLite, not a Python loop)."""
        rows = self._rows(_REACH, (seq, sha256, writer, lowest))
        return (int(rows[0][0]), str(rows[0][1])) if rows else (seq, sha256)

    def forget_pages(self) -> None:
        """Drop the pages held (rows were written since they were read)."""
        self._pages.clear()

    async def keep(self, links: Mapping[tuple[str, int], ProvenLink]) -> bool:
        """Keep ``links`` in the file, in a worker thread (the file may be busy with the
        console's indexing: a wait there does not stop the event loop); a prover's
        ``keep``. False when they could not be written: the prover holds them and
        hands them over again with its next ones."""
        db = self._open()
        if db is None:
            return False
        try:
            await db.run(partial(_store, links=links))
        except sqlite3.Error as exc:
            log.debug("proven links not kept in %s: %s", self._path, exc)
            return False
        self.forget_pages()
        return True

    def __getitem__(self, key: tuple[str, int]) -> ProvenLink:
        writer, seq = key
        return self._page(writer, seq // PAGE)[seq]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        rows = self._rows("SELECT writer, seq FROM proven_links ORDER BY writer, seq")
        return iter([(str(w), int(q)) for w, q in rows])

    def __len__(self) -> int:
        rows = self._rows("SELECT count(*) FROM proven_links")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        """Close the file (the pages held stay readable)."""
        if self._db is not None:
            self._db.close()
            self._db = None


async def load(path: Path) -> Kept:
    """Every link kept in the file at ``path`` (none when it cannot be read)."""
    try:
        db = IndexDatabase(path, SCHEMA)
    except sqlite3.Error as exc:
        log.debug("proven links not read from %s: %s", path, exc)
        return {}
    try:
        rows = await db.run(lambda c: c.execute("SELECT * FROM proven_links").fetchall())
    except sqlite3.Error as exc:
        log.debug("proven links not read from %s: %s", path, exc)
        return {}
    finally:
        db.close()
    return {
        (str(w), int(q)): ProvenLink(str(h), None if p is None else int(p), ps)
        for w, q, h, p, ps in rows
    }


async def save(path: Path, links: Mapping[tuple[str, int], ProvenLink]) -> None:
    """Keep ``links`` (a link proven again replaces its row: the chain was walked anew)."""
    if not links:
        return
    try:
        db = IndexDatabase(path, SCHEMA)
    except sqlite3.Error as exc:
        log.debug("proven links not kept in %s: %s", path, exc)
        return
    try:
        await db.run(partial(_store, links=links))
    except sqlite3.Error as exc:
        log.debug("proven links not kept in %s: %s", path, exc)
    finally:
        db.close()


def _store(conn: sqlite3.Connection, links: Mapping[tuple[str, int], ProvenLink]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT OR REPLACE INTO proven_links VALUES (?, ?, ?, ?, ?)",
            [(w, q, p.sha256, p.prev_seq, p.prev_sha256) for (w, q), p in links.items()],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
