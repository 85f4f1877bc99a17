"""Manifest batches in the state store, and the stored time format.

A batch's object key and content are fixed here, in one durable transaction,
before the object is written: a restart rewrites the identical object instead
of adding a second manifest line.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from archiver.state.base import ManifestBatch

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def encode_time(value: datetime) -> str:
    """A stored timestamp: UTC, fixed width, so text order is time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime given to the state store: {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def decode_time(text: str) -> datetime:
    """The aware UTC datetime :func:`encode_time` stored."""
    return datetime.fromisoformat(text).astimezone(UTC)


def manifest_batch_key(manifest_date: str, batch_id: int, run_id: str) -> str:
    """The object key of a manifest batch: ``manifests/date=D/<id:012>-<run_id>.jsonl``."""
    return f"manifests/date={manifest_date}/{batch_id:012d}-{run_id}.jsonl"


class ManifestBatches:
    """The manifest-batch part of :class:`archiver.state.sqlite.SqliteStateStore`."""

    _write: Callable[..., AbstractAsyncContextManager[aiosqlite.Connection]]
    _fetch: Callable[..., Awaitable[list[Any]]]
    _clock: Callable[[], datetime]

    async def create_manifest_batches(self, run_id: str, max_lines: int) -> int:
        """See :meth:`archiver.state.base.StateStore.create_manifest_batches`.

        Batches are cut per manifest date in job id order. ``run_id`` becomes
        part of an object key, so it must be a plain token (letters, digits,
        ``.``, ``_``, ``-``).
        """
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run_id must be a plain token of up to 64 characters: {run_id!r}")
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
                key = manifest_batch_key(day, batch_id, run_id)
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
                await db.execute(
                    "UPDATE manifest_batches SET content = ?, line_count = ? WHERE id = ?",
                    (content, len(lines), batch_id),
                )
                created += 1

    async def unwritten_manifest_batches(self) -> list[ManifestBatch]:
        """See :meth:`archiver.state.base.StateStore.unwritten_manifest_batches`."""
        rows = await self._fetch(
            "SELECT id, key, content, line_count FROM manifest_batches"
            " WHERE written_at IS NULL ORDER BY id"
        )
        return [
            ManifestBatch(id=int(r[0]), key=str(r[1]), content=bytes(r[2]), line_count=int(r[3]))
            for r in rows
        ]

    async def mark_manifest_written(self, batch_id: int) -> None:
        """See :meth:`archiver.state.base.StateStore.mark_manifest_written`.

        Idempotent: marking a written batch again changes nothing.
        """
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE manifest_batches SET written_at = ?, content = NULL"
                " WHERE id = ? AND written_at IS NULL",
                (encode_time(self._clock()), batch_id),
            )
            if cur.rowcount == 0:
                found = await db.execute_fetchall(
                    "SELECT 1 FROM manifest_batches WHERE id = ?", (batch_id,)
                )
                if not list(found):
                    raise KeyError(f"no manifest batch with id {batch_id}")
