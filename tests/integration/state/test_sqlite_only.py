"""What only the SQLite store has: its file (modes, WAL, a file that is not a
database), its migrations and its single-connection transactions.

SQLite only on purpose: the protocol's behaviour is in test_store.py, for both stores.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest

from archiver.errors import ConfigError
from archiver.failures import FailureKind
from archiver.settings import StateSettings
from archiver.state import JobState, SqliteState, open_state, open_state_store
from archiver.state.sqlite.database import Database
from archiver.state.sqlite.migrations import LATEST_VERSION, MIGRATIONS, migrate, schema_version


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "state.sqlite3"


def raw_query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Look into the file with plain sqlite3, as an operator would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def test_open_state_creates_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    async with open_state_store(StateSettings(url=f"sqlite:///{path}")) as state:
        assert await state.reports.counts() == dict.fromkeys(JobState, 0)
    assert path.is_file()
    assert raw_query(path, "PRAGMA journal_mode") == [("wal",)]
    assert raw_query(path, "SELECT version FROM schema_version") == [(LATEST_VERSION,)]


async def test_open_state_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite, just text " * 100)
    with pytest.raises(ConfigError, match="ARCHIVER_STATE__URL: cannot open"):
        await open_state(StateSettings(url=str(path)))


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    async with await SqliteState.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_version SET version = ?", (LATEST_VERSION + 5,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match=r"schema version \d+, newer than this archiver knows"):
        await open_state(StateSettings(url=str(db_path)))
    # Refusing must not touch the file.
    assert raw_query(db_path, "SELECT version FROM schema_version") == [(LATEST_VERSION + 5,)]


async def test_migrations_run_in_order_and_a_failed_step_rolls_back(tmp_path: Path) -> None:
    steps = [
        ("CREATE TABLE a (x INTEGER)", "INSERT INTO a VALUES (1)"),
        ("ALTER TABLE a ADD COLUMN y TEXT", "UPDATE a SET y = 'two'"),
        ("CREATE TABLE c (z INTEGER)", "INSERT INTO no_such_table VALUES (1)"),
    ]
    async with aiosqlite.connect(tmp_path / "m.db", isolation_level=None) as conn:
        assert await schema_version(conn) == 0
        assert await migrate(conn, steps[:1]) == 1
        assert await migrate(conn, steps[:2]) == 2
        assert list(await conn.execute_fetchall("SELECT x, y FROM a")) == [(1, "two")]
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            await migrate(conn, steps)
        assert await schema_version(conn) == 2
        tables = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE name = 'c'")
        assert list(tables) == []


async def test_failures_recorded_before_kinds_get_theirs_from_the_upgrade(tmp_path: Path) -> None:
    # A version-1 database, as an earlier archiver left it: failures with words only.
    path = tmp_path / "v1.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        assert await migrate(conn, MIGRATIONS[:1]) == 1
        reasons = {
            "1": "recording never became available (HTTP 404 from http://h/x)",
            "2": "recording host 10.0.0.1 is a private or special address",
            "3": "gave up after 8 attempts: HTTP 503 from http://h/x",
            "4": "gave up after 8 attempts: timed out",
        }
        for cdr, reason in reasons.items():
            await conn.execute(
                "INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
                " state, next_attempt_at, reason, first_seen_at, updated_at)"
                " VALUES ('cdr_v2', ?, ?, 't', '{}', 'failed', 't', ?, 't', ?)",
                (cdr, f"sip-{cdr}", reason, f"2021-02-17T00:00:0{cdr}"),
            )
    async with await SqliteState.open(path) as state:
        kinds = {f.cdr_id: f.kind for f in await state.reports.failures()}
    assert kinds == {
        "1": FailureKind.NEVER_AVAILABLE,
        "2": FailureKind.HOST_NOT_ALLOWED,
        "3": FailureKind.HTTP_ERROR,
        "4": FailureKind.OTHER,
    }


def test_latest_version_counts_every_step() -> None:
    assert LATEST_VERSION == len(MIGRATIONS) >= 1


async def test_a_failed_or_cancelled_transaction_leaves_nothing(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "state.db")
    try:
        insert = "INSERT INTO checkpoints (provider, value) VALUES (?, 'x')"

        async def failing() -> None:
            async with db.write() as conn:
                await conn.execute(insert, ("a",))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await failing()

        started = asyncio.Event()

        async def stuck() -> None:
            async with db.write() as conn:
                await conn.execute(insert, ("b",))
                started.set()
                await asyncio.Event().wait()  # stuck for ever, until cancelled

        task = asyncio.create_task(stuck())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The connection is usable again, with neither write kept.
        async with db.write() as conn:
            await conn.execute(insert, ("c",))
        assert await db.fetch("SELECT provider FROM checkpoints") == [("c",)]
    finally:
        await db.close()


async def test_durable_write_restores_normal_sync(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "state.db")
    try:
        assert await db.fetch("PRAGMA synchronous") == [(1,)]  # NORMAL
        async with db.write(durable=True) as conn:
            assert list(await conn.execute_fetchall("PRAGMA synchronous")) == [(2,)]  # FULL
        assert await db.fetch("PRAGMA synchronous") == [(1,)]
    finally:
        await db.close()


async def test_a_cancellation_during_begin_leaves_no_open_transaction(tmp_path):
    """Cancel a write at every early await point: the next write must still work."""
    import asyncio

    from archiver.settings import StateSettings
    from archiver.state import open_state_store

    async with open_state_store(StateSettings(url=str(tmp_path / "s.sqlite3"))) as store:
        for delay in (0, 0, 0.0001, 0.0005, 0.001):
            task = asyncio.create_task(store.progress.set_checkpoint("cdr_v2", datetime.now(UTC)))
            if delay:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await store.progress.set_checkpoint("cdr_v2", datetime.now(UTC))
        assert await store.progress.get_checkpoint("cdr_v2") is not None
