"""The state-store conformance fixtures: every test taking ``backend``, ``store`` or
``two_handles`` runs once on SQLite and once on PostgreSQL.

A Postgres run gets a fresh database on the session's throwaway cluster
(``postgres_url``, tests/conftest.py); an SQLite run a fresh file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from archiver.state import StateStore
from tests.integration.state.helpers import Backend, FakeClock, PostgresBackend, SqliteBackend


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """One state database of each kind in turn."""
    if request.param == "postgres":
        return PostgresBackend(request.getfixturevalue("postgres_url"))
    return SqliteBackend(tmp_path / "nested" / "dir" / "state.sqlite3")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(backend: Backend, clock: FakeClock) -> AsyncIterator[StateStore]:
    """A store on ``backend`` whose clock the test moves."""
    opened = await backend.open(clock)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def two_handles(backend: Backend) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two processes' handles on one state (two connections, or two pools)."""
    async with AsyncExitStack() as stack:
        a = await backend.open()
        stack.push_async_callback(a.close)
        b = await backend.open()
        stack.push_async_callback(b.close)
        yield a, b
