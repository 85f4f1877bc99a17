"""What the state-store tests build calls and manifest lines from, and the two stores.

:class:`Backend` is one state database of either kind: ``open()`` gives a new
store on it (another process's handle, or the same process after a restart)
and ``query()`` looks into it with plain SQL, as an operator would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import asyncpg

from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord, Direction, Provider
from archiver.state import PostgresState, SqliteState, State
from archiver.state.postgres import PoolConfig

T0 = datetime(2021, 2, 17, 3, 0, tzinfo=UTC)
ICT = timezone(timedelta(hours=7))

# Small pools: the tests open many stores; a statement is given 60 s on a busy machine.
TEST_POOL = PoolConfig(size=4, timeout=60.0)


@dataclass
class FakeClock:
    """The store's clock for updated_at, release and retry times."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def make_call(
    cdr_id: str,
    url: str | None = "https://rec.example/a.mp3",
    *,
    sip: str | None = None,
    started: datetime = T0,
    provider: Provider = Provider.CDR_V2,
    status: str = "ANSWERED",
) -> CallRecord:
    return CallRecord(
        provider=provider,
        cdr_id=cdr_id,
        sip_call_id=sip or f"sip-{cdr_id}",
        started_at=started,
        ended_at=started + timedelta(seconds=30),
        duration=30,
        direction=Direction.INBOUND,
        direction_raw="in",
        status=status,
        recording_url=url,
        raw={"id": cdr_id, "status": status, "nested": {"vi": "Xin chào"}},
    )


def archived_entry(n: int, **extra: object) -> ManifestEntry:
    return ManifestEntry.from_line(
        {
            "sip_call_id": f"s{n}",
            "cdr_id": f"c{n}",
            "provider": "cdr_v2",
            "object_key": f"recordings/{n}.mp3",
            "sha256": f"{n:064x}",
            "size": 1000 + n,
            "content_type": "audio/mpeg",
            "archived_at": (T0 + timedelta(minutes=n)).isoformat(),
            "n": n,
            **extra,
        }
    )


class Backend(Protocol):
    """One state database of either kind."""

    kind: str
    url: str  # what ARCHIVER_STATE__URL would say

    async def open(self, clock: FakeClock | None = None) -> State:
        """A new store (its own connection or pool) on this database."""
        ...

    async def query(self, sql: str) -> list[tuple[object, ...]]:
        """Plain SQL on the database, outside any store."""
        ...

    async def execute(self, sql: str) -> None:
        """A plain SQL statement, committed (the database made by a first ``open``)."""
        ...


@dataclass
class SqliteBackend:
    """An SQLite file."""

    path: Path
    kind: str = "sqlite"

    @property
    def url(self) -> str:
        return str(self.path)

    async def open(self, clock: FakeClock | None = None) -> State:
        if clock is None:
            return await SqliteState.open(self.path)
        return await SqliteState.open(self.path, clock=clock)

    async def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    async def execute(self, sql: str) -> None:
        await (await self.open()).close()
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                conn.execute(sql)
        finally:
            conn.close()


@dataclass
class PostgresBackend:
    """A fresh database on the session's PostgreSQL cluster."""

    url: str
    kind: str = "postgres"

    async def open(self, clock: FakeClock | None = None) -> State:
        if clock is None:
            return await PostgresState.open(self.url, TEST_POOL)
        return await PostgresState.open(self.url, TEST_POOL, clock=clock)

    async def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def execute(self, sql: str) -> None:
        await (await self.open()).close()
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@asynccontextmanager
async def reopened(backend: Backend, clock: FakeClock | None = None) -> AsyncIterator[State]:
    """A new store on the same database: the process after a restart."""
    state = await backend.open(clock)
    try:
        yield state
    finally:
        await state.close()
