"""The state on one SQLite file (aiosqlite, one connection): its parts, opened and closed.

Durability: the journal is WAL with ``synchronous=NORMAL``. A process crash
loses nothing; a power loss may lose the last few commits but never corrupts
the file. That is acceptable because every transition replays safely: a lost
``mark_archived`` makes the job transferring again, ``release_transferring``
re-queues it, and its identical object is stored again; a lost window or
checkpoint means a CDR page is listed twice and deduplicated. The one
exception is ``create_manifest_batches``: its batch key must be on disk before
the object is written, or a restart would batch the same jobs again under a
new key (a second manifest line). So that transaction runs with
``synchronous=FULL``, which also makes every earlier commit durable (the WAL is
written in order).

The pipeline's tasks share one state; :class:`~archiver.state.sqlite.database.Database`
runs each operation alone on the single connection, and every part
(:mod:`~archiver.state.protocols`) is a small object over it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from archiver.state.sqlite.batches import SqliteBatches
from archiver.state.sqlite.database import Database
from archiver.state.sqlite.jobs import SqliteJobs, SqliteOutcomes, SqliteRechecks
from archiver.state.sqlite.leases import SqliteLeases, SqliteRoles
from archiver.state.sqlite.reads import SqliteProgress, SqliteReports

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(UTC)


class SqliteState:
    """:class:`archiver.state.protocols.State` on SQLite. Open with :meth:`open`."""

    def __init__(self, db: Database, *, clock: Clock = _system_clock) -> None:
        """The parts over an open, migrated database; prefer :meth:`open`."""
        self.db = db
        self.availability = db.availability
        self.jobs = SqliteJobs(db, clock)
        self.outcomes = SqliteOutcomes(db, clock)
        self.rechecks = SqliteRechecks(db)
        self.leases = SqliteLeases(db, clock)
        self.roles = SqliteRoles(db)
        self.progress = SqliteProgress(db, clock)
        self.batches = SqliteBatches(db, clock)
        self.reports = SqliteReports(db)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Clock = _system_clock,
        file_mode: int = 0o600,
        outage: float = 0.0,
    ) -> SqliteState:
        """Open (creating it and its directory if needed) and migrate the database at ``path``.

        A new file and folder get ``file_mode``. ``outage``: seconds a file that
        cannot be used (full or read-only disk) is waited for. Raises ConfigError
        if the file was written by a newer archiver.
        """
        return cls(await Database.open(path, file_mode=file_mode, outage=outage), clock=clock)

    @classmethod
    async def open_read_only(cls, path: Path) -> SqliteState | None:
        """An existing, current database opened for reading only; None if it is not one.

        Only the reading methods may be used; a write raises sqlite3.OperationalError.
        """
        db = await Database.open_read_only(path)
        return None if db is None else cls(db)

    async def __aenter__(self) -> SqliteState:
        """``async with`` support: the state itself."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on leaving the ``async with`` block."""
        await self.close()

    async def close(self) -> None:
        """Close the database (safe to call twice)."""
        await self.db.close()
