"""What the pipeline remembers between runs: its parts, and the two databases.

SQLite (a file, the default) or PostgreSQL (``ARCHIVER_STATE__URL=postgresql://...``,
several replicas on one state). Open the state once at the composition root and
hand each user the part it needs (:mod:`archiver.state.protocols`)::

    async with open_state_store(settings.state) as state:
        handler = JobHandler(state.outcomes, ...)
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from archiver.errors import ConfigError
from archiver.settings import ENV_PREFIX, StateSettings
from archiver.state.base import AddResult, Failure, Job, JobState, ManifestBatch
from archiver.state.protocols import (
    Batches,
    JobLeases,
    JobQueue,
    Outcomes,
    Progress,
    Rechecks,
    Reports,
    Roles,
    State,
    WriterIdentity,
)
from archiver.state.sqlite import SqliteState

if TYPE_CHECKING:
    from archiver.state.postgres import PoolConfig, PostgresState

log = logging.getLogger("archiver.state")

__all__ = [
    "AddResult",
    "Batches",
    "Failure",
    "Job",
    "JobLeases",
    "JobQueue",
    "JobState",
    "ManifestBatch",
    "Outcomes",
    "PostgresState",
    "Progress",
    "Rechecks",
    "Reports",
    "Roles",
    "SqliteState",
    "State",
    "WriterIdentity",
    "describe_state",
    "open_state",
    "open_state_read_only",
    "open_state_store",
]


def __getattr__(name: str) -> Any:
    # The PostgreSQL store (and asyncpg) is loaded when asked for: a run on SQLite
    # never imports it (about 30 ms of every start).
    if name == "PostgresState":
        from archiver.state.postgres import PostgresState  # noqa: PLC0415

        return PostgresState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _postgres() -> type[PostgresState]:
    from archiver.state.postgres import PostgresState  # noqa: PLC0415

    return PostgresState


def _pool_config(settings: StateSettings) -> PoolConfig:
    from archiver.state.postgres import PoolConfig  # noqa: PLC0415

    return PoolConfig(size=settings.pool_size, timeout=settings.timeout, outage=settings.outage)


def describe_state(settings: StateSettings) -> str:
    """Where the state is, for people: the SQLite file, or the PostgreSQL database
    and host (never a password). ConfigError for a URL that is neither."""
    if settings.is_postgres:
        from archiver.state.postgres.connect import Target  # noqa: PLC0415

        return Target.parse(settings.url).describe()
    return str(settings.path.absolute())


async def open_state(settings: StateSettings) -> State:
    """Open (creating if needed) and migrate the state database; the caller closes it.

    Raises ConfigError when the database cannot be used: a bad URL, a file that
    is not an SQLite database, one that cannot be opened, a PostgreSQL server
    that cannot be reached or refuses us, or a database written by a newer archiver.
    """
    if settings.is_postgres:
        return await _postgres().open(settings.url, _pool_config(settings))
    path = settings.path
    try:
        return await SqliteState.open(
            path, file_mode=settings.file_mode_bits, outage=settings.outage
        )
    except (sqlite3.Error, OSError) as exc:
        # At startup these are about the file the settings name (wrong path,
        # permissions, not a database, locked by a stuck process): say which.
        raise ConfigError(f"{ENV_PREFIX}STATE__URL: cannot open {path}: {exc}") from exc


@asynccontextmanager
async def open_state_read_only(settings: StateSettings) -> AsyncIterator[State | None]:
    """The state database for reading only, or None where there is none (a new machine,
    or a PostgreSQL database with no current schema).

    Nothing is created or written. ConfigError when it is there but unusable.
    """
    store: State | None
    if settings.is_postgres:
        store = await _postgres().open_read_only(settings.url, _pool_config(settings))
        where = describe_state(settings)
    else:
        path = settings.path
        where = str(path)
        if not path.is_file():
            yield None
            return
        try:
            store = await SqliteState.open_read_only(path)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"{ENV_PREFIX}STATE__URL: cannot read {path}: {exc}") from exc
    if store is None:
        # Migrating would be a write: say why the state's knowledge is not used.
        log.warning("state database %s is empty or of an older schema: not read", where)
    try:
        yield store
    finally:
        if store is not None:
            await store.close()


@asynccontextmanager
async def open_state_store(settings: StateSettings) -> AsyncIterator[State]:
    """:func:`open_state` as an ``async with`` block that closes the store on exit."""
    store = await open_state(settings)
    try:
        yield store
    finally:
        await store.close()
