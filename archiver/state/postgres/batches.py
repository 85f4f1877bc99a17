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
from archiver.state.base import ManifestBatch
from archiver.state.postgres.connect import Pool, changed
from archiver.state.records import stored_batch
from archiver.storage.layout import WRITER_ID, manifest_key

# The advisory lock key of "cutting manifest batches" ("manifest").
BATCH_LOCK = 0x6D616E69_66657374 & 0x7FFF_FFFF_FFFF_FFFF


class ManifestBatches:
    """The manifest-batch part of :class:`archiver.state.postgres.store.PostgresStateStore`."""

    _pool: Pool
    _clock: Callable[[], datetime]

    async def writer_id(self) -> str:
        """See :meth:`archiver.state.base.StateStore.writer_id` (drawn once per database)."""
        async with self._pool.connection() as conn:
            return str(await conn.fetchval("SELECT writer_id FROM writer WHERE id = 1"))

    async def create_manifest_batches(self, writer: str, max_lines: int) -> int:
        """See :meth:`archiver.state.base.StateStore.create_manifest_batches`.

        Per manifest date in job id order, as in SQLite; serialised across
        processes by the batch lock.
        """
        if not WRITER_ID.fullmatch(writer):
            raise ValueError(f"writer must be a plain token of up to 64 characters: {writer!r}")
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, not {max_lines}")
        created = 0
        now = self._clock()
        async with self._pool.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
            while True:
                day = await conn.fetchval(
                    "SELECT manifest_date FROM calls"
                    " WHERE state = 'archived' AND manifest_batch_id IS NULL"
                    " ORDER BY manifest_date LIMIT 1"
                )
                if day is None:
                    return created
                batch_id = int(
                    await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM manifest_batches")
                )
                key = manifest_key(str(day), batch_id, writer)
                await conn.execute(
                    "INSERT INTO manifest_batches (id, key, manifest_date, content, line_count,"
                    " created_at) VALUES ($1, $2, $3, ''::bytea, 0, $4)",
                    batch_id,
                    key,
                    day,
                    now,
                )
                taken = await conn.fetch(
                    "UPDATE calls SET manifest_batch_id = $1 WHERE id IN"
                    " (SELECT id FROM calls WHERE state = 'archived' AND manifest_batch_id IS NULL"
                    " AND manifest_date = $2 ORDER BY id LIMIT $3)"
                    " RETURNING id, manifest_line",
                    batch_id,
                    day,
                    max_lines,
                )
                lines = [str(r[1]) for r in sorted(taken, key=lambda r: int(r[0]))]
                content = "".join(line + "\n" for line in lines).encode()
                link = await _chain_link(conn, writer, batch_id, key, content, len(lines))
                await conn.execute(
                    "UPDATE manifest_batches SET content = $1, line_count = $2, link = $3"
                    " WHERE id = $4",
                    content,
                    len(lines),
                    link,
                    batch_id,
                )
                created += 1

    async def unwritten_manifest_batches(self) -> list[ManifestBatch]:
        """See :meth:`archiver.state.base.StateStore.unwritten_manifest_batches`."""
        async with self._pool.connection() as conn:
            rows = await conn.fetch(
                "SELECT id, key, content, line_count, link FROM manifest_batches"
                " WHERE written_at IS NULL ORDER BY id"
            )
        return [stored_batch(tuple(r)) for r in rows]

    async def mark_manifest_written(self, batch_id: int) -> None:
        """See :meth:`archiver.state.base.StateStore.mark_manifest_written` (idempotent)."""
        async with self._pool.connection() as conn:
            status = await conn.execute(
                "UPDATE manifest_batches SET written_at = $1, content = NULL, link = NULL"
                " WHERE id = $2 AND written_at IS NULL",
                self._clock(),
                batch_id,
            )
            if not changed(status):
                found = await conn.fetchval(
                    "SELECT 1 FROM manifest_batches WHERE id = $1", batch_id
                )
                if found is None:
                    raise KeyError(f"no manifest batch with id {batch_id}")


async def _chain_link(
    conn: asyncpg.Connection, writer: str, seq: int, key: str, content: bytes, lines: int
) -> bytes:
    """The link of batch ``seq`` after ``writer``'s last one, which it becomes."""
    last = await conn.fetchrow(
        "SELECT last_seq, last_link_sha256 FROM chain WHERE writer = $1", writer
    )
    previous = (int(last[0]), str(last[1])) if last is not None else None
    link: Link = next_link(writer, seq, key, content, lines, previous)
    data = link.to_bytes()
    await conn.execute(
        "INSERT INTO chain (writer, last_seq, last_link_sha256) VALUES ($1, $2, $3)"
        " ON CONFLICT (writer) DO UPDATE SET last_seq = excluded.last_seq,"
        " last_link_sha256 = excluded.last_link_sha256",
        writer,
        seq,
        sha256_hex(data),
    )
    return data
