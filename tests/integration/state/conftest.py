"""The state-store conformance fixtures: every test taking ``backend``, ``store`` or
``two_handles`` runs once on SQLite and once on PostgreSQL.

An SQLite run gets a fresh file. A Postgres run gets the module's one database
on the session's throwaway cluster, emptied before each test: TRUNCATE costs a
few milliseconds where a new database (tests/conftest.py's ``postgres_url``,
which test_postgres.py uses) costs a checkpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from archiver.state import State
from tests.integration.state.helpers import Backend, FakeClock, PostgresBackend, SqliteBackend
from tests.support.postgres import PostgresServer

# Every table the migrations make but schema_version and writer (the writer id
# stays, as a state's does); identities restart, as in a new database.
EMPTY = "TRUNCATE calls, manifest_batches, windows, checkpoints, chain, roles RESTART IDENTITY"


@pytest.fixture(scope="module")
def conformance_database(postgres_cluster: PostgresServer, postgres_template: str) -> Iterator[str]:
    """A migrated database for the module's Postgres runs (its name)."""
    name = f"conformance_{uuid.uuid4().hex[:12]}"
    postgres_cluster.create_database(name, postgres_template)
    try:
        yield name
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """One state database of each kind in turn, empty."""
    if request.param == "postgres":
        cluster: PostgresServer = request.getfixturevalue("postgres_cluster")
        name: str = request.getfixturevalue("conformance_database")
        cluster.psql(EMPTY, database=name)
        return PostgresBackend(cluster.dsn(name))
    return SqliteBackend(tmp_path / "nested" / "dir" / "state.sqlite3")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(backend: Backend, clock: FakeClock) -> AsyncIterator[State]:
    """A store on ``backend`` whose clock the test moves."""
    opened = await backend.open(clock)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def two_handles(backend: Backend) -> AsyncIterator[tuple[State, State]]:
    """Two processes' handles on one state (two connections, or two pools)."""
    async with AsyncExitStack() as stack:
        a = await backend.open()
        stack.push_async_callback(a.close)
        b = await backend.open()
        stack.push_async_callback(b.close)
        yield a, b
