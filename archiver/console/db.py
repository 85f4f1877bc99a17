"""One SQLite file for the console's index, used from a worker thread.

The console's index is a cache of the storage (manifest lines, audit
records): deleting the file loses nothing, the next start rebuilds it. One
connection, one statement at a time (a lock), off the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS manifests (
    key TEXT PRIMARY KEY,
    lines INTEGER NOT NULL,
    bad_lines INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    cdr_id TEXT NOT NULL,
    sip_call_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    started INTEGER,
    direction TEXT,
    from_key TEXT,
    to_key TEXT,
    extension TEXT,
    agent_cf TEXT,
    agent_name_cf TEXT,
    line TEXT NOT NULL,
    manifest_key TEXT NOT NULL,
    checked_at TEXT,
    problem TEXT,
    UNIQUE (provider, cdr_id, sha256)
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started);
CREATE INDEX IF NOT EXISTS calls_extension ON calls (extension, started);
CREATE INDEX IF NOT EXISTS calls_direction ON calls (direction, started);
CREATE INDEX IF NOT EXISTS calls_sip ON calls (sip_call_id);
CREATE INDEX IF NOT EXISTS calls_cdr ON calls (cdr_id);
-- A call's phone numbers (kind 'p': caller and callee) and agent (kind 'a': id
-- and name), one row each, in (value, time) order: the newest page of a number
-- that half the archive shares (the hotline) is a walk down one index, not a sort.
CREATE TABLE IF NOT EXISTS terms (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    started INTEGER,
    call_id INTEGER NOT NULL,
    PRIMARY KEY (kind, value, started, call_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    key TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    result TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
"""


class Database:
    """The index's SQLite file: ``await db.run(fn)`` runs ``fn(connection)`` in a thread.

    ``schema`` is the console's tables by default; ``get``'s id index
    (:mod:`archiver.retrieval.local_index`) opens the same file with its own.
    """

    def __init__(self, path: Path, schema: str = SCHEMA) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(schema)
        except sqlite3.Error:
            self._conn.close()  # not a database (or not ours): no connection left open
            raise
        self._lock = threading.Lock()

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection, in a worker thread, one at a time."""
        return await asyncio.to_thread(self._locked, fn)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @classmethod
    def fresh(cls, path: Path) -> Database:
        """An empty index at ``path`` (the old file and its journal removed)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return cls(path)
