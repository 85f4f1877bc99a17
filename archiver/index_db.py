"""One SQLite file for the indexes of the storage, used from a worker thread.

The console's index (:mod:`archiver.console.tables`) and ``get``'s id index
(:mod:`archiver.retrieval.local_index`) are caches of the storage (manifest
lines, audit records): deleting the file loses nothing, the next start
rebuilds it. One connection, one statement at a time (a lock), off the event
loop. Each index brings its own tables; both may share one file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class IndexDatabase:
    """An index's SQLite file: ``await db.run(fn)`` runs ``fn(connection)`` in a thread.

    ``schema`` creates the index's tables if they are not there yet.
    """

    def __init__(self, path: Path, schema: str) -> None:
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
    def fresh(cls, path: Path, schema: str) -> IndexDatabase:
        """An empty index at ``path`` (the old file and its journal removed)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return cls(path, schema)
