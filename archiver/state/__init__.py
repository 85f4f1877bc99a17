"""What the pipeline remembers between runs: the protocol and its SQLite store.

Open the store once at the composition root and pass it down::

    async with open_state_store(settings.state) as state:
        ...
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from archiver.errors import ConfigError
from archiver.settings import ENV_PREFIX, StateSettings
from archiver.state.base import (
    AddResult,
    Failure,
    Job,
    JobState,
    ManifestBatch,
    StateStore,
)
from archiver.state.sqlite import SqliteStateStore

log = logging.getLogger("archiver.state")

__all__ = [
    "AddResult",
    "Failure",
    "Job",
    "JobState",
    "ManifestBatch",
    "SqliteStateStore",
    "StateStore",
    "open_state",
    "open_state_read_only",
    "open_state_store",
]


async def open_state(settings: StateSettings) -> SqliteStateStore:
    """Open (creating if needed) and migrate the state database; the caller closes it.

    Raises ConfigError when the database cannot be used: a bad URL, a file that
    is not an SQLite database, one that cannot be opened, or one written by a
    newer archiver.
    """
    path = settings.path
    try:
        return await SqliteStateStore.open(path, file_mode=settings.file_mode_bits)
    except (sqlite3.Error, OSError) as exc:
        # At startup these are about the file the settings name (wrong path,
        # permissions, not a database, locked by a stuck process): say which.
        raise ConfigError(f"{ENV_PREFIX}STATE__URL: cannot open {path}: {exc}") from exc


@asynccontextmanager
async def open_state_read_only(settings: StateSettings) -> AsyncIterator[SqliteStateStore | None]:
    """The state database for reading only, or None where there is none (a new machine).

    Nothing is created or written. ConfigError when the file is there but unusable.
    """
    path = settings.path
    if not path.is_file():
        yield None
        return
    try:
        store = await SqliteStateStore.open_read_only(path)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"{ENV_PREFIX}STATE__URL: cannot read {path}: {exc}") from exc
    if store is None:
        # Migrating would be a write: say why the state's knowledge is not used.
        log.warning("state database %s is empty or of an older schema: not read", path)
    try:
        yield store
    finally:
        if store is not None:
            await store.close()


@asynccontextmanager
async def open_state_store(settings: StateSettings) -> AsyncIterator[SqliteStateStore]:
    """:func:`open_state` as an ``async with`` block that closes the store on exit."""
    store = await open_state(settings)
    try:
        yield store
    finally:
        await store.close()
