"""One SQLite file for the indexes of the storage, used from a worker thread.

The console's index (:mod:`archiver.console.tables`) and ``get``'s id index
(:mod:`archiver.retrieval.local_index`) are caches of the storage (manifest
lines, audit records): deleting the file loses nothing, the next start
rebuilds it. One connection, one statement at a time (a lock), off the event
loop. Each index brings its own tables; both may share one file.

It holds phone numbers and customer ids: the file is created 0600 in a folder
created 0700 (SQLite gives its -wal and -shm files the database file's mode),
and a file an older version left readable by others is made 0600 on open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from archiver.private_files import ensure_private_file, make_dirs

T = TypeVar("T")
log = logging.getLogger("archiver.index")
INDEX_FILE_MODE = 0o600
_SIDE_FILES = ("", "-wal", "-shm", "-journal")
# What another process's lock fails a read with when SQLite may not wait.
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class IndexDatabase:
    """An index's SQLite file: ``await db.run(fn)`` runs ``fn(connection)`` in a thread.

    ``schema`` creates the index's tables if they are not there yet.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        if str(path) != ":memory:":
            _private(path)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(schema)
        except sqlite3.Error:
            self._conn.close()  # not a database (or not ours): no connection left open
            raise
        self._lock = threading.Lock()
        self._busy_ms = int(self._conn.execute("PRAGMA busy_timeout").fetchone()[0])

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection, in a worker thread, one at a time."""
        return await asyncio.to_thread(self._locked, fn)

    async def read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A quick read (a point lookup): ``fn`` at once on the event loop's thread when
        the connection is free and no other process's lock is in the way, else as
        :meth:`run`.

        The pipeline asks the index before every recording: a lookup takes a few
        microseconds, a round trip to a worker thread and back several times that
        in CPU (two thread wake-ups). Nothing here waits: a connection busy in a
        thread, or a file locked by another process (SQLite's wait set to 0 for
        this read), sends the read to the thread, where it waits as usual.
        """
        if self._lock.acquire(blocking=False):
            try:
                self._conn.execute("PRAGMA busy_timeout = 0")
                try:
                    return fn(self._conn)
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _BUSY:
                        raise
                finally:
                    self._conn.execute(f"PRAGMA busy_timeout = {self._busy_ms:d}")
            finally:
                self._lock.release()
        return await self.run(fn)

    def run_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection on this thread (a lookup of a millisecond, where
        handing it to a thread would cost more than it saves)."""
        return self._locked(fn)

    def add_function(self, name: str, arity: int, fn: Callable[..., int | str | None]) -> None:
        """Make ``fn`` callable from this file's SQL as ``name`` (deterministic)."""
        with self._lock:
            self._conn.create_function(name, arity, fn, deterministic=True)

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


def _private(path: Path) -> None:
    """Create the index file (and its missing folders) private; tighten an existing one.

    An existing file readable by others (made 0644 by an older version) is
    made 0600, with its -wal and -shm files: it holds phone numbers. Nothing
    is done where the file is not ours to change (a read-only folder, another
    owner): SQLite then opens it as it is, or says why not.
    """
    try:
        make_dirs(path.parent, INDEX_FILE_MODE)
        ensure_private_file(path, INDEX_FILE_MODE)
    except OSError:
        return
    for suffix in _SIDE_FILES:
        side = Path(f"{path}{suffix}")
        with contextlib.suppress(OSError):
            st = os.lstat(side)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
                os.chmod(side, INDEX_FILE_MODE)
                log.warning("the local index %s was readable by others: made 0600", side)
