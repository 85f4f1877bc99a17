"""Manifest batches in the PostgreSQL state, cut by one process at a time.

Replicas flush on their own timers, so two may cut batches at once. Each cut
runs in one transaction that first takes a transaction-scoped advisory lock:
the next batch id (the chain's seq) is read and used under it, and the archived
lines are taken under it, so no two batches share a seq and every archived
line lands in exactly one batch. The lock ends with the transaction, crash
included.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg

from archiver.manifest.chain import Link, next_link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.state.base import ManifestBatch, WaitingLine
from archiver.state.postgres.connect import Pool, changed, utc
from archiver.state.queries import adoption
from archiver.state.queries import batches as sql
from archiver.state.queries import jobs as sql_jobs
from archiver.state.records import line_values, stored_batch
from archiver.storage.layout import WRITER_ID, manifest_key

# The advisory lock key of "cutting manifest batches" ("manifest").
BATCH_LOCK = 0x6D616E69_66657374 & 0x7FFF_FFFF_FFFF_FFFF


Clock = Callable[[], datetime]


class PostgresBatches:
    """:class:`archiver.state.protocols.Batches` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        """Batches on ``pool``; ``clock`` stamps their creation and writing."""
        self._pool = pool
        self._clock = clock

    async def writer_id(self) -> str:
        """See :meth:`archiver.state.protocols.WriterIdentity.writer_id` (one per database)."""
        return str(await self._pool.fetchval(sql.WRITER_ID.postgres))

    async def create_manifest_batches(self, writer: str, max_lines: int) -> int:
        """See :meth:`archiver.state.protocols.Batches.create_manifest_batches`.

        Per manifest date in job id order, as in SQLite; serialised across
        processes by the batch lock.
        """
        if not WRITER_ID.fullmatch(writer):
            raise ValueError(f"writer must be a plain token of up to 64 characters: {writer!r}")
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, not {max_lines}")
        now = self._clock()

        # Repeatable: a cut that committed left no archived line unbatched.
        async def cut(conn: asyncpg.Connection) -> int:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
            created = 0
            while True:
                day = await conn.fetchval(sql.NEXT_DAY.postgres)
                if day is None:
                    return created
                batch_id = int(await conn.fetchval(sql.NEXT_BATCH_ID.postgres))
                key = manifest_key(str(day), batch_id, writer)
                await conn.execute(sql.INSERT_BATCH.postgres, batch_id, key, day, now)
                taken = await conn.fetch(sql.TAKE_LINES.postgres, batch_id, day, max_lines)
                lines = [str(r[1]) for r in sorted(taken, key=lambda r: int(r[0]))]
                content = "".join(line + "\n" for line in lines).encode()
                link = await _chain_link(conn, writer, batch_id, key, content, len(lines))
                await conn.execute(sql.FILL_BATCH.postgres, batch_id, content, len(lines), link)
                created += 1

        return await self._pool.run(cut, transaction=True)

    async def unwritten_manifest_batches(self) -> list[ManifestBatch]:
        """See :meth:`archiver.state.protocols.Batches.unwritten_manifest_batches`."""
        rows = await self._pool.fetch(sql.UNWRITTEN.postgres)
        return [stored_batch(tuple(r)) for r in rows]

    async def waiting_lines(self) -> list[WaitingLine]:
        """See :meth:`archiver.state.protocols.Batches.waiting_lines`."""
        rows = await self._pool.fetch(adoption.WAITING_LINES.postgres)
        return [WaitingLine(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    async def set_aside(self, job_id: int, entry: ManifestEntry, manifest_date: str) -> bool:
        """See :meth:`archiver.state.protocols.Batches.set_aside`."""
        now = self._clock()
        values = line_values(entry, manifest_date, utc)

        async def set_aside(conn: asyncpg.Connection) -> bool:
            await conn.execute(adoption.ENSURE_ADOPTED_BATCH.postgres, now)
            status = await conn.execute(adoption.SET_ASIDE.postgres, job_id, now, *values)
            return changed(status) > 0

        async def resolve(conn: asyncpg.Connection) -> bool | None:
            # After a broken connection: the line carries this call's stamp if it committed.
            found = await conn.fetchval(sql_jobs.UPDATED.postgres, job_id, now)
            return True if found else None

        return await self._pool.run(set_aside, transaction=True, resolve=resolve)

    async def mark_manifest_written(self, batch_id: int) -> None:
        """See :meth:`archiver.state.protocols.Batches.mark_manifest_written`."""
        now = self._clock()

        async def mark(conn: asyncpg.Connection) -> None:
            # Repeatable: a batch already marked is left as it is.
            status = await conn.execute(sql.MARK_WRITTEN.postgres, batch_id, now)
            if not changed(status):
                if await conn.fetchval(sql.BATCH_EXISTS.postgres, batch_id) is None:
                    raise KeyError(f"no manifest batch with id {batch_id}")

        await self._pool.run(mark)


async def _chain_link(
    conn: asyncpg.Connection, writer: str, seq: int, key: str, content: bytes, lines: int
) -> bytes:
    """The link of batch ``seq`` after ``writer``'s last one, which it becomes."""
    last = await conn.fetchrow(sql.LAST_LINK.postgres, writer)
    previous = (int(last[0]), str(last[1])) if last is not None else None
    link: Link = next_link(writer, seq, key, content, lines, previous)
    data = link.to_bytes()
    await conn.execute(sql.SET_LAST_LINK.postgres, writer, seq, sha256_hex(data))
    return data
