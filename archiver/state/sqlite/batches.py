"""Manifest batches in the SQLite state (SQL: archiver/state/queries/batches.py).

A batch's object key and content are fixed here, in one durable transaction,
before the object is written: a restart rewrites the identical object instead
of adding a second manifest line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import aiosqlite

from archiver.manifest.chain import Link, next_link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.state.base import ManifestBatch, WaitingLine
from archiver.state.queries import adoption
from archiver.state.queries import batches as sql
from archiver.state.records import line_values, stored_batch
from archiver.state.sqlite.database import Database, encode_time
from archiver.storage.layout import WRITER_ID, manifest_key

Clock = Callable[[], datetime]


class SqliteBatches:
    """:class:`archiver.state.protocols.Batches` on an SQLite :class:`Database`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Batches on ``db``; ``clock`` stamps their creation and writing."""
        self._db = db
        self._clock = clock

    async def writer_id(self) -> str:
        """See :meth:`archiver.state.protocols.WriterIdentity.writer_id`."""
        rows = await self._db.fetch(sql.WRITER_ID.sqlite)
        return str(rows[0][0])

    async def create_manifest_batches(self, writer: str, max_lines: int) -> int:
        """See :meth:`archiver.state.protocols.Batches.create_manifest_batches`.

        Batches are cut per manifest date in job id order. ``writer`` becomes
        part of object keys, so it must be a plain token (letters, digits,
        ``.``, ``_``, ``-``). Each batch's link follows the writer's previous
        one, in the same transaction: the chain in the state never forks.
        """
        if not WRITER_ID.fullmatch(writer):
            raise ValueError(f"writer must be a plain token of up to 64 characters: {writer!r}")
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, not {max_lines}")
        ts = encode_time(self._clock())

        async def cut(db: aiosqlite.Connection) -> int:
            created = 0
            while True:
                head = list(await db.execute_fetchall(sql.NEXT_DAY.sqlite))
                if not head:
                    return created
                day = str(head[0][0])
                # Inside BEGIN IMMEDIATE no one else can take this id meanwhile.
                top = list(await db.execute_fetchall(sql.NEXT_BATCH_ID.sqlite))
                batch_id = int(top[0][0])
                key = manifest_key(day, batch_id, writer)
                await db.execute(sql.INSERT_BATCH.sqlite, (batch_id, key, day, ts))
                taken = await db.execute_fetchall(sql.TAKE_LINES.sqlite, (batch_id, day, max_lines))
                lines = [str(line) for _, line in sorted(taken)]
                content = "".join(line + "\n" for line in lines).encode()
                link = await _chain_link(db, writer, batch_id, key, content, len(lines))
                await db.execute(sql.FILL_BATCH.sqlite, (batch_id, content, len(lines), link))
                created += 1

        # Rolled back whole when it fails: cutting again is safe.
        return await self._db.transact(cut, durable=True)

    async def unwritten_manifest_batches(self) -> list[ManifestBatch]:
        """See :meth:`archiver.state.protocols.Batches.unwritten_manifest_batches`."""
        return [stored_batch(r) for r in await self._db.fetch(sql.UNWRITTEN.sqlite)]

    async def mark_manifest_written(self, batch_id: int) -> None:
        """See :meth:`archiver.state.protocols.Batches.mark_manifest_written`."""
        now = encode_time(self._clock())

        async def mark(db: aiosqlite.Connection) -> None:
            cur = await db.execute(sql.MARK_WRITTEN.sqlite, (batch_id, now))
            if cur.rowcount == 0:
                found = await db.execute_fetchall(sql.BATCH_EXISTS.sqlite, (batch_id,))
                if not list(found):
                    raise KeyError(f"no manifest batch with id {batch_id}")

        await self._db.transact(mark)

    async def waiting_lines(self) -> list[WaitingLine]:
        """See :meth:`archiver.state.protocols.Batches.waiting_lines`."""
        rows = await self._db.fetch(adoption.WAITING_LINES.sqlite)
        return [WaitingLine(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    async def set_aside(self, job_id: int, entry: ManifestEntry, manifest_date: str) -> bool:
        """See :meth:`archiver.state.protocols.Batches.set_aside`."""
        now = encode_time(self._clock())
        values = line_values(entry, manifest_date, encode_time)

        async def set_aside(db: aiosqlite.Connection) -> bool:
            await db.execute(adoption.ENSURE_ADOPTED_BATCH.sqlite, (now,))
            cur = await db.execute(adoption.SET_ASIDE.sqlite, (job_id, now, *values))
            return cur.rowcount > 0

        return await self._db.transact(set_aside)


async def _chain_link(
    db: aiosqlite.Connection, writer: str, seq: int, key: str, content: bytes, lines: int
) -> bytes:
    """The link of batch ``seq`` after ``writer``'s last one, which it becomes."""
    last = list(await db.execute_fetchall(sql.LAST_LINK.sqlite, (writer,)))
    previous = (int(last[0][0]), str(last[0][1])) if last else None
    link: Link = next_link(writer, seq, key, content, lines, previous)
    data = link.to_bytes()
    await db.execute(sql.SET_LAST_LINK.sqlite, (writer, seq, sha256_hex(data)))
    return data
