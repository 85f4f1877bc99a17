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
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from functools import partial
from pathlib import Path

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
