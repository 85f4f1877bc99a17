"""The writes of ``get``'s local id index (:mod:`archiver.retrieval.local_index`) to its SQLite
file, each in one transaction, and the questions it asks it while updating.

A batch of manifest objects (their keys and the hashes of their ids) and the
links of a rollup (as hints) go to SQLite as one JSON text each, taken apart
there (``json_each``): one statement per table, not one per row, so the
thread that reads and hashes the next batch is not stopped for the GIL at
every row (at 5 million calls, 10 million rows).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial

from archiver.retrieval.id_rows import Hint, RollupRows

# SQLite's page cache while updating, in KiB: the hash B-tree of a million calls
# (about 40 MB) stays in memory, so its random inserts do not go to the disk.
_CACHE_KIB = 64 * 1024
# A build from nothing appends to id_hashes_staged and sorts it in at the end: no random
# inserts to keep in memory (at 5M calls: the same CPU, 35 MiB less peak RSS).
_STAGED_CACHE_KIB = 16 * 1024


def storing(rows: RollupRows, *, staged: bool) -> Callable[[sqlite3.Connection], None]:
    """The write of a rollup's rows, marking it read with them (``staged``: the hashes to
    id_hashes_staged, for a build from nothing)."""
    return partial(
        store_texts,
        objects=rows.objects,
        keys=rows.keys,
        hints=rows.hints,
        rollup=rows.key,
        staged=staged,
    )


def known(conn: sqlite3.Connection, keys: Sequence[str], table: str = "id_manifests") -> set[str]:
    """Which of ``keys`` are indexed (asked in chunks: SQLite bounds a statement's values)."""
    known: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT key FROM {table} WHERE key IN ({marks})", chunk)  # noqa: S608 - a constant, "?"s
        known.update(str(key) for (key,) in rows)
    return known


def unstage(conn: sqlite3.Connection) -> None:
    """Move the staged hashes into id_hashes, sorted (appended to its B-tree in order),
    in one transaction."""
    if conn.execute("SELECT 1 FROM id_hashes_staged LIMIT 1").fetchone() is None:
        return
    conn.execute(f"PRAGMA cache_size = -{_STAGED_CACHE_KIB}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT OR IGNORE INTO id_hashes (hash, manifest) "
            "SELECT hash, manifest FROM id_hashes_staged ORDER BY hash, manifest"
        )
        conn.execute("DELETE FROM id_hashes_staged")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM id_manifests LIMIT 1").fetchone() is None


def forget(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ("id_hashes", "id_hashes_staged"):
            conn.execute(
                f"DELETE FROM {table} WHERE manifest IN "  # noqa: S608 - a constant
                "(SELECT id FROM id_manifests WHERE key = ?)",
                (key,),
            )
        conn.execute("DELETE FROM id_manifests WHERE key = ?", (key,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# A batch goes to SQLite as JSON texts, taken apart there: one statement per table instead
# of one per row (each of which took the GIL from the thread reading the next batch).
_INSERT_KEYS = "INSERT OR IGNORE INTO id_manifests (key) SELECT value FROM json_each(?)"
# Only the objects this write added (ids past the largest before it): one another command
# indexed meanwhile is done, as it was when each key was inserted and skipped one by one.
_INSERT_ROWS = (
    "INSERT {how} INTO {table} (hash, manifest) "
    "SELECT h.value, m.id FROM json_each(?) AS o "
    "JOIN id_manifests AS m ON m.key = json_extract(o.value, '$[0]') AND m.id > ? "
    "JOIN json_each(o.value, '$[1]') AS h"
)
_INSERT_HINTS = (
    "INSERT OR IGNORE INTO proven_links (writer, seq, sha256, prev_seq, prev_sha256) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]') "
    "FROM json_each(?)"
)


def store(
    conn: sqlite3.Connection,
    batch: Sequence[tuple[str, Sequence[int]]],
    rollup: str = "",
    hints: Sequence[Hint] = (),
    staged: bool = False,
) -> None:
    """Index ``batch`` (manifest keys, each with the hashes of its ids), keep ``hints``
    and mark ``rollup`` read, in one transaction (``staged``: the hashes to
    id_hashes_staged, for a build from nothing)."""
    store_texts(
        conn,
        objects=json.dumps(batch),
        keys=json.dumps([key for key, _ in batch]),
        hints=json.dumps(hints),
        rollup=rollup,
        staged=staged,
    )


def store_texts(
    conn: sqlite3.Connection,
    *,
    objects: str,
    keys: str,
    hints: str = "[]",
    rollup: str = "",
    staged: bool = False,
) -> None:
    """:func:`store` of a batch as JSON texts (:class:`~archiver.retrieval.id_rows.RollupRows`)."""
    conn.execute(f"PRAGMA cache_size = -{_STAGED_CACHE_KIB if staged else _CACHE_KIB}")
    rows = _INSERT_ROWS.format(
        how="" if staged else "OR IGNORE", table="id_hashes_staged" if staged else "id_hashes"
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        (before,) = conn.execute("SELECT coalesce(max(id), 0) FROM id_manifests").fetchone()
        conn.execute(_INSERT_KEYS, (keys,))
        conn.execute(rows, (objects, before))
        # A link proven by a walk is never replaced by a hint.
        conn.execute(_INSERT_HINTS, (hints,))
        if rollup:  # with its objects: a crash leaves both or neither
            conn.execute("INSERT OR IGNORE INTO id_rollups (key) VALUES (?)", (rollup,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
