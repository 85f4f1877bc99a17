"""The state's SQLite file: one connection, its transactions, and the stored time format.

A full disk, a file system turned read-only, an I/O error or a lock held too
long fail a transaction whole (SQLite rolls it back: nothing half-written);
:meth:`Database.transact` and :meth:`Database.fetch` run it again, with
backoff, until the file can be used or the outage bound passes (see
:mod:`archiver.state.outage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from archiver.errors import ConfigError
from archiver.private_files import ensure_private_file, make_dirs
from archiver.state.outage import Availability
from archiver.state.sqlite.migrations import LATEST_VERSION, migrate, schema_version

_BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")

# What a file that cannot be used for now fails with: the disk full, the file
# system read-only, an I/O error, the file gone or locked. Space returning, a
# remount or the lock's holder ending cures each; a constraint or a bug does not.
_AWAY_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)


def transient(exc: BaseException, *, read_only: bool = False) -> str | None:
    """Why ``exc`` means the file cannot be used for now (one line), or None.

    On a database opened read-only on purpose, "read-only" is a misuse, not an outage.
    """
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _AWAY_CODES:
        return None
    if read_only and code & 0xFF == sqlite3.SQLITE_READONLY:
        return None
    return f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)}: {exc}"


def encode_time(value: datetime) -> str:
    """A stored timestamp: UTC, fixed width, so text order is time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime given to the state store: {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def decode_time(text: str) -> datetime:
    """The aware UTC datetime :func:`encode_time` stored."""
    return datetime.fromisoformat(text).astimezone(UTC)


def in_transaction(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], durable: bool = False
) -> T:
    """``fn(conn)`` between ``BEGIN IMMEDIATE`` and ``COMMIT``, rolled back on any error
    (``durable``: committed with ``synchronous=FULL``). Runs on the connection's thread."""
    previous = None
    if durable:
        previous = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("PRAGMA synchronous = FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have ended the transaction itself (disk full, I/O error):
            # the original error matters more than "no transaction is active".
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("ROLLBACK")
            raise
    finally:
        if previous is not None:
            conn.execute(f"PRAGMA synchronous = {previous:d}")
    return result


class Database:
    """One SQLite connection shared by a process's tasks, one operation at a time.

    An ``asyncio.Lock`` makes each operation, and every statement of a
    transaction, run alone on the connection; otherwise one task's statement
    could land inside another task's open transaction.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        where: str = "SQLite database",
        outage: float = 0.0,
        read_only: bool = False,
    ) -> None:
        """Wrap an open connection in autocommit mode; prefer :meth:`open`.

        ``outage``: seconds an unusable file is waited for (0: fail at once).
        """
        self._conn = conn
        self._lock = asyncio.Lock()
        self._read_only = read_only
        self.availability = Availability(where, outage)
        self.commits = 0  # write transactions committed: how many updates were grouped

    @classmethod
    async def open(cls, path: Path, *, file_mode: int = 0o600, outage: float = 0.0) -> Database:
        """Open the file at ``path`` (creating it and its directory), set it up, migrate it.

        A new file and folder get ``file_mode`` (SQLite gives the -wal and -shm
        files the database file's mode).
        """
        make_dirs(path.parent, file_mode)
        ensure_private_file(path, file_mode)
        # isolation_level=None: no implicit transactions. ``write`` issues BEGIN
        # IMMEDIATE, so a write transaction takes the write lock up front instead
        # of failing later on a lock upgrade.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            # Another process (``archiver status`` next to the daemon) may hold
            # the write lock for a moment: wait rather than fail.
            await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
            # WAL + NORMAL can lose the last commits on power loss but never
            # corrupts the file. Without WAL (a file system without shared
            # memory), NORMAL could corrupt it; FULL cannot.
            wal = bool(rows) and str(rows[0][0]).lower() == "wal"
            await conn.execute(f"PRAGMA synchronous = {'NORMAL' if wal else 'FULL'}")
            await conn.execute("PRAGMA foreign_keys = ON")
            # Deleted and overwritten content (a signed URL, a raw payload) is
            # zeroed, not left in free pages of the file.
            await conn.execute("PRAGMA secure_delete = ON")
            await migrate(conn, name=str(path))
        except BaseException:
            await conn.close()
            raise
        return cls(conn, where=f"SQLite database {path}", outage=outage)

    @classmethod
    async def open_read_only(cls, path: Path) -> Database | None:
        """Open an existing file for reading only, or None when it has no current schema.

        Nothing is created, migrated or written: for commands that only look
        (``reconcile`` without ``--fix``) next to a running daemon. ConfigError
        if a newer archiver wrote the file.
        """
        uri = f"{(await asyncio.to_thread(path.resolve)).as_uri()}?mode=ro"
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            version = await schema_version(conn)
        except BaseException:
            await conn.close()
            raise
        if version != LATEST_VERSION:
            await conn.close()
            if version > LATEST_VERSION:
                raise ConfigError(
                    f"state database {path} has schema version {version}, "
                    f"newer than this archiver knows ({LATEST_VERSION}): upgrade the archiver"
                )
            return None
        return cls(conn, where=f"SQLite database {path}", read_only=True)

    @contextlib.asynccontextmanager
    async def write(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on exit, rolled back on error.

        ``durable``: commit with ``synchronous=FULL``, so the transaction is on
        disk (power loss included) before the caller acts on it.
        """
        async with self._lock:
            conn = self._conn
            previous = None
            if durable:
                rows = list(await conn.execute_fetchall("PRAGMA synchronous"))
                previous = int(rows[0][0])
                await conn.execute("PRAGMA synchronous = FULL")
            try:
                try:
                    # BEGIN is inside: a cancellation while it is awaited still gets
                    # the rollback below. aiosqlite runs statements in order on one
                    # thread, so the rollback lands after the BEGIN (or finds no
                    # transaction, which _rollback ignores).
                    await conn.execute("BEGIN IMMEDIATE")
                    yield conn
                    await conn.execute("COMMIT")
                    self.commits += 1
                except BaseException:
                    # Shielded: a cancelled task must still end its transaction,
                    # or the next BEGIN would fail. A failed COMMIT lands here too.
                    await asyncio.shield(self._rollback())
                    raise
            finally:
                if previous is not None:
                    await asyncio.shield(self._pragma_synchronous(previous))

    async def _rollback(self) -> None:
        # SQLite may have ended the transaction by itself (disk full, I/O error),
        # and the original error matters more than "no transaction is active".
        with contextlib.suppress(sqlite3.OperationalError):
            await self._conn.execute("ROLLBACK")

    async def _pragma_synchronous(self, level: int) -> None:
        await self._conn.execute(f"PRAGMA synchronous = {level:d}")

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one statement (a single statement reads one consistent snapshot),
        read again while the file cannot be used, up to the outage bound."""

        async def read() -> list[sqlite3.Row]:
            async with self._lock:
                return list(await self._conn.execute_fetchall(sql, params))

        return await self.ride(read)

    async def transact(
        self, op: Callable[[aiosqlite.Connection], Awaitable[T]], *, durable: bool = False
    ) -> T:
        """``await op(conn)`` in one :meth:`write` transaction, run again (whole: a
        failed one was rolled back) while the file cannot be used, up to the bound."""

        async def once() -> T:
            async with self.write(durable=durable) as conn:
                return await op(conn)

        return await self.ride(once)

    async def transact_now(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False
    ) -> T:
        """``fn(conn)`` in one :meth:`transaction_now`, run again (whole: a failed one
        was rolled back) while the file cannot be used, up to the bound."""
        return await self.ride(lambda: self.transaction_now(fn, durable=durable))

    async def transaction_now(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False
    ) -> T:
        """``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction run whole on the
        connection's thread (:func:`in_transaction`); an error is raised as is.

        One hand-off to the thread instead of one per statement (BEGIN, each
        statement, COMMIT: each a wake-up of the thread and of the loop, most of a
        small update's CPU). A caller cancelled meanwhile leaves the transaction
        to end on the thread, committed or rolled back, never open.
        """
        async with self._lock:
            # aiosqlite's own primitive (what its execute() is built on; the
            # version is bounded in pyproject.toml): the function runs on the
            # connection's thread, in order with everything else sent to it.
            result: T = await self._conn._execute(  # type: ignore[no-untyped-call]
                in_transaction, self._conn._conn, fn, durable
            )
        self.commits += 1
        return result

    async def ride(self, op: Callable[[], Awaitable[T]]) -> T:
        """``await op()`` (work on this database, safe to repeat) through an outage."""
        return await self.availability.ride(
            op, transient=lambda exc: transient(exc, read_only=self._read_only)
        )

    async def close(self) -> None:
        """Close the connection (safe to call twice)."""
        async with self._lock:
            await self._conn.close()
