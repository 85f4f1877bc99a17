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
from archiver.state.records import record_json

Row = tuple[str, str, str, datetime, str, str | None]  # provider, cdr_id, sip, started, record, url

_INSERT_ONE = (
    "INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
    " recording_url, state, next_attempt_at, first_seen_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)"
    " ON CONFLICT (cdr_id, provider) DO NOTHING RETURNING id"
)
# A known call not yet archived or failed, whose URL appeared or changed.
_UPDATE_ONE = (
    "UPDATE calls SET sip_call_id = $3, started_at = $4, record_json = $5,"
    " recording_url = $6, updated_at = $7,"
    " next_attempt_at = CASE state WHEN 'no_recording' THEN $7 ELSE next_attempt_at END,"
    " state = CASE state WHEN 'no_recording' THEN 'pending' ELSE state END"
    " WHERE cdr_id = $2 AND provider = $1"
    " AND state NOT IN ('archived', 'failed') AND recording_url IS DISTINCT FROM $6"
)
_INSERT_MANY = (
    "INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
    " recording_url, state, next_attempt_at, first_seen_at, updated_at)"
    " SELECT p, c, s, t, r, u, CASE WHEN u IS NULL THEN 'no_recording' ELSE 'pending' END,"
    " $7, $7, $7"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],"
    " $6::text[]) AS page (p, c, s, t, r, u)"
    " ON CONFLICT (cdr_id, provider) DO NOTHING"
)
_UPDATE_MANY = (
    "UPDATE calls SET sip_call_id = page.s, started_at = page.t, record_json = page.r,"
    " recording_url = page.u, updated_at = $7,"
    " next_attempt_at = CASE calls.state WHEN 'no_recording' THEN $7"
    " ELSE calls.next_attempt_at END,"
    " state = CASE calls.state WHEN 'no_recording' THEN 'pending' ELSE calls.state END"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],"
    " $6::text[]) AS page (p, c, s, t, r, u)"
    " WHERE calls.cdr_id = page.c AND calls.provider = page.p AND page.u IS NOT NULL"
    " AND calls.state NOT IN ('archived', 'failed')"
    " AND calls.recording_url IS DISTINCT FROM page.u"
)


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
    """Add a page inside the caller's transaction; see ``StateStore.add_calls``."""
    rows = [_row(c) for c in calls]
    ts = utc(now)
    if len({(r[0], r[1]) for r in rows}) < len(rows):
        new, updated = await _one_by_one(conn, rows, ts)
    else:
        rows.sort(key=lambda r: (r[1], r[0]))
        columns = [list(column) for column in zip(*rows, strict=True)]
        new = changed(await conn.execute(_INSERT_MANY, *columns, ts))
        updated = changed(await conn.execute(_UPDATE_MANY, *columns, ts))
    return AddResult(new=new, updated=updated, known=len(rows) - new - updated)


async def _one_by_one(conn: asyncpg.Connection, rows: list[Row], ts: datetime) -> tuple[int, int]:
    insert = await conn.prepare(_INSERT_ONE)
    update = await conn.prepare(_UPDATE_ONE)
    new = updated = 0
    for row in rows:
        state = JobState.PENDING if row[5] else JobState.NO_RECORDING
        if await insert.fetchval(*row, str(state), ts) is not None:
            new += 1
        elif row[5] is not None:
            await update.fetch(*row, ts)
            updated += changed(update.get_statusmsg())
    return new, updated
