"""The index's quick read (``IndexDatabase.read_now``, the archive guard's lookup before
every recording) on a real SQLite file: at once on the loop's thread when nothing is in
the way, and never a wait on that thread when something is: a connection busy in a
worker thread, or another process's lock on the file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from archiver.index_db import IndexDatabase
from archiver.retrieval.local_index import SCHEMA


def _count_on(thread_ids: list[int]) -> Callable[[sqlite3.Connection], int]:
    """A read of how many manifest objects are indexed that notes the thread it ran on."""

    def read(conn: sqlite3.Connection) -> int:
        thread_ids.append(threading.get_ident())
        return int(conn.execute("SELECT count(*) FROM id_manifests").fetchone()[0])

    return read


async def _loop_turns_while(task: asyncio.Task[int]) -> int:
    """How many times the loop ran other work before ``task`` ended (at most 3 counted)."""
    turns = 0
    while not task.done() and turns < 3:
        await asyncio.sleep(0)
        turns += 1
    return turns


async def test_a_free_connection_is_read_at_once_on_the_loops_thread(tmp_path: Path) -> None:
    db = IndexDatabase(tmp_path / "index.sqlite3", SCHEMA)
    try:
        ran_on: list[int] = []
        assert await db.read_now(_count_on(ran_on)) == 0
        assert ran_on == [threading.get_ident()]
    finally:
        db.close()


async def test_a_connection_busy_in_a_thread_sends_the_read_there(tmp_path: Path) -> None:
    db = IndexDatabase(tmp_path / "index.sqlite3", SCHEMA)
    release = threading.Event()
    holding = threading.Event()

    def slow_write(conn: sqlite3.Connection) -> None:
        holding.set()
        release.wait(30)
        conn.execute("INSERT INTO id_manifests (key) VALUES ('manifests/a.jsonl')")

    try:
        writing = asyncio.create_task(db.run(slow_write))
        while not holding.is_set():
            await asyncio.sleep(0.01)
        ran_on: list[int] = []
        reading = asyncio.create_task(db.read_now(_count_on(ran_on)))
        # The loop goes on while the read waits for the connection.
        assert await _loop_turns_while(reading) == 3
        release.set()
        await writing
        assert await reading == 1  # after the write, as the connection's order has it
        assert ran_on == [ran_on[0]]
        assert ran_on[0] != threading.get_ident()
    finally:
        release.set()
        db.close()


async def test_another_processs_lock_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    db = IndexDatabase(path, SCHEMA)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # A file system without WAL (the index file in rollback-journal mode), and
        # another process writing it: readers get SQLITE_BUSY until its commit.
        await db.run(lambda conn: conn.execute("PRAGMA journal_mode = DELETE").fetchall())
        other.execute("BEGIN EXCLUSIVE")
        other.execute("INSERT INTO id_manifests (key) VALUES ('manifests/b.jsonl')")
        ran_on: list[int] = []
        reading = asyncio.create_task(db.read_now(_count_on(ran_on)))
        assert await _loop_turns_while(reading) == 3
        assert not reading.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(reading, 30) == 1
        # Tried at once on the loop's thread (busy), then read in the worker thread.
        assert ran_on[0] == threading.get_ident()
        assert ran_on[-1] != threading.get_ident()
    finally:
        other.close()
        db.close()
