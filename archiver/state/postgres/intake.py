"""``add_calls`` on PostgreSQL: a page of CDRs into the calls table, in one transaction.

A page whose CDRs are all distinct (the usual case) goes in as two statements
over arrays (``unnest``): one insert of the new calls, one update of the known
ones whose URL appeared or changed. Rows are sorted by key first, so two
processes adding overlapping pages lock them in one order and cannot deadlock.
A page that repeats a CDR goes row by row, in page order, so a repeat behaves
as if it came in a later page (as in SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from archiver.models import CallRecord
from archiver.state.base import AddResult, JobState
from archiver.state.postgres.connect import changed, utc
from archiver.state.queries.jobs import INSERT_CALL, INSERT_PAGE, UPDATE_CALL, UPDATE_PAGE
from archiver.state.records import record_json

Row = tuple[str, str, str, datetime, str, str | None]  # provider, cdr_id, sip, started, record, url


def _row(call: CallRecord) -> Row:
    return (
        str(call.provider),
        call.cdr_id,
        call.sip_call_id,
        utc(call.started_at),
        record_json(call),
        call.recording_url or None,
    )


async def add_calls(
    conn: asyncpg.Connection, calls: Sequence[CallRecord], now: datetime
) -> AddResult:
    """Add a page inside the caller's transaction; see
    :meth:`archiver.state.protocols.JobQueue.add_calls`."""
    rows = [_row(c) for c in calls]
    ts = utc(now)
    if len({(r[0], r[1]) for r in rows}) < len(rows):
        new, updated = await _one_by_one(conn, rows, ts)
    else:
        rows.sort(key=lambda r: (r[1], r[0]))
        columns = [list(column) for column in zip(*rows, strict=True)]
        new = changed(await conn.execute(INSERT_PAGE, *columns, ts))
        updated = changed(await conn.execute(UPDATE_PAGE, *columns, ts))
    return AddResult(new=new, updated=updated, known=len(rows) - new - updated)


async def _one_by_one(conn: asyncpg.Connection, rows: list[Row], ts: datetime) -> tuple[int, int]:
    insert = await conn.prepare(INSERT_CALL.postgres)
    update = await conn.prepare(UPDATE_CALL.postgres)
    new = updated = 0
    for row in rows:
        state = JobState.PENDING if row[5] else JobState.NO_RECORDING
        if await insert.fetchval(*row, str(state), ts) is not None:
            new += 1
        elif row[5] is not None:
            await update.fetch(*row, ts)
            updated += changed(update.get_statusmsg())
    return new, updated
