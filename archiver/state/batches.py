"""Manifest batches in the state store, and the stored time format.

A batch's object key and content are fixed here, in one durable transaction,
before the object is written: a restart rewrites the identical object instead
of adding a second manifest line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from archiver.manifest.chain import Link, next_link, sha256_hex
from archiver.state.base import ManifestBatch
from archiver.state.records import stored_batch
from archiver.storage.layout import WRITER_ID, manifest_key


def encode_time(value: datetime) -> str:
    """A stored timestamp: UTC, fixed width, so text order is time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime given to the state store: {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def decode_time(text: str) -> datetime:
    """The aware UTC datetime :func:`encode_time` stored."""
    return datetime.fromisoformat(text).astimezone(UTC)


class ManifestBatches:
    """The manifest-batch part of :class:`archiver.state.sqlite.SqliteStateStore`."""

    _write: Callable[..., AbstractAsyncContextManager[aiosqlite.Connection]]
    _fetch: Callable[..., Awaitable[list[Any]]]
    _clock: Callable[[], datetime]

    async def writer_id(self) -> str:
        """See :meth:`archiver.state.base.StateStore.writer_id`."""
        rows = await self._fetch("SELECT writer_id FROM writer WHERE id = 1")
        return str(rows[0][0])

    async def create_manifest_batches(self, writer: str, max_lines: int) -> int:
        """See :meth:`archiver.state.base.StateStore.create_manifest_batches`.

        Batches are cut per manifest date in job id order. ``writer`` becomes
        part of object keys, so it must be a plain token (letters, digits,
        ``.``, ``_``, ``-``). Each batch's link follows the writer's previous
        one, in the same transaction: the chain in the state never forks.
        """
        if not WRITER_ID.fullmatch(writer):
            raise ValueError(f"writer must be a plain token of up to 64 characters: {writer!r}")
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, not {max_lines}")
        created = 0
        ts = encode_time(self._clock())
        async with self._write(durable=True) as db:
            while True:
                head = list(
                    await db.execute_fetchall(
                        "SELECT manifest_date FROM calls INDEXED BY calls_unbatched"
                        " WHERE state = 'archived' AND manifest_batch_id IS NULL"
                        " ORDER BY manifest_date LIMIT 1"
                    )
                )
                if not head:
                    return created
                day = str(head[0][0])
                # Inside BEGIN IMMEDIATE no one else can take this id meanwhile.
                top = list(await db.execute_fetchall("SELECT max(id) FROM manifest_batches"))
                batch_id = int(top[0][0] or 0) + 1
                key = manifest_key(day, batch_id, writer)
                # The row comes first (content filled below): the calls reference it.
                await db.execute(
                    "INSERT INTO manifest_batches (id, key, manifest_date, content, line_count,"
                    " created_at) VALUES (?, ?, ?, x'', 0, ?)",
                    (batch_id, key, day, ts),
                )
                taken = await db.execute_fetchall(
                    "UPDATE calls SET manifest_batch_id = ?1 WHERE id IN"
                    " (SELECT id FROM calls INDEXED BY calls_unbatched"
                    " WHERE state = 'archived' AND manifest_batch_id IS NULL"
                    " AND manifest_date = ?2 ORDER BY id LIMIT ?3)"
                    " RETURNING id, manifest_line",
                    (batch_id, day, max_lines),
                )
                lines = [str(line) for _, line in sorted(taken)]
                content = "".join(line + "\n" for line in lines).encode()
                link = await self._chain_link(db, writer, batch_id, key, content, len(lines))
                await db.execute(
                    "UPDATE manifest_batches SET content = ?, line_count = ?, link = ?"
                    " WHERE id = ?",
                    (content, len(lines), link, batch_id),
                )
                created += 1

    @staticmethod
    async def _chain_link(
        db: aiosqlite.Connection, writer: str, seq: int, key: str, content: bytes, lines: int
    ) -> bytes:
        """The link of batch ``seq`` after ``writer``'s last one, which it becomes."""
        last = list(
            await db.execute_fetchall(
                "SELECT last_seq, last_link_sha256 FROM chain WHERE writer = ?", (writer,)
            )
        )
        previous = (int(last[0][0]), str(last[0][1])) if last else None
        link: Link = next_link(writer, seq, key, content, lines, previous)
        data = link.to_bytes()
        await db.execute(
            "INSERT INTO chain (writer, last_seq, last_link_sha256) VALUES (?, ?, ?)"
            " ON CONFLICT (writer) DO UPDATE SET last_seq = excluded.last_seq,"
            " last_link_sha256 = excluded.last_link_sha256",
            (writer, seq, sha256_hex(data)),
        )
        return data

    async def unwritten_manifest_batches(self) -> list[ManifestBatch]:
        """See :meth:`archiver.state.base.StateStore.unwritten_manifest_batches`."""
        rows = await self._fetch(
            "SELECT id, key, content, line_count, link FROM manifest_batches"
            " WHERE written_at IS NULL ORDER BY id"
        )
        return [stored_batch(r) for r in rows]

    async def mark_manifest_written(self, batch_id: int) -> None:
        """See :meth:`archiver.state.base.StateStore.mark_manifest_written`.

        Idempotent: marking a written batch again changes nothing.
        """
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE manifest_batches SET written_at = ?, content = NULL, link = NULL"
                " WHERE id = ? AND written_at IS NULL",
                (encode_time(self._clock()), batch_id),
            )
            if cur.rowcount == 0:
                found = await db.execute_fetchall(
                    "SELECT 1 FROM manifest_batches WHERE id = ?", (batch_id,)
                )
                if not list(found):
                    raise KeyError(f"no manifest batch with id {batch_id}")
