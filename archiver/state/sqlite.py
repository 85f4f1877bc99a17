"""The state store on one SQLite file (aiosqlite, one connection).

Durability: the journal is WAL with ``synchronous=NORMAL``. A process crash
loses nothing; a power loss may lose the last few commits but never corrupts
the file. That is acceptable because every transition replays safely: a lost
``mark_archived`` makes the job transferring again, ``release_transferring``
re-queues it, and its identical object is stored again; a lost window or
checkpoint means a CDR page is listed twice and deduplicated. The one
exception is ``create_manifest_batches``: its batch key must be on disk before
the object is written, or a restart would batch the same jobs again under a
new key (a second manifest line). So that transaction runs with
``synchronous=FULL``, which also makes every earlier commit durable (the WAL is
written in order).

The pipeline's tasks share one store; :class:`~archiver.state.migrations.Database`
runs each operation alone on the single connection. A job's outcome updates
issued while the connection is busy are committed together in one transaction
(:mod:`archiver.state.grouped`), each caller returning after that commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord
from archiver.state.base import (
    DEFAULT_LEASE,
    AddResult,
    Failure,
    Job,
    JobState,
)
from archiver.state.batches import ManifestBatches
from archiver.state.batches import decode_time as decode_time
from archiver.state.batches import encode_time as encode_time
from archiver.state.grouped import GroupedUpdates
from archiver.state.leases import JobLeases
from archiver.state.migrations import Database
from archiver.state.records import (
    archived_line,
    check_retry_state,
    record_json,
    stored_job,
    stored_kind,
)
from archiver.state.roles import Roles

Clock = Callable[[], datetime]
# The SQL is written out in full, never assembled. The hot queries name their
# partial index (INDEXED BY): without statistics the planner prefers the index
# on state and then sorts every due job, which is slow with millions of rows;
# INDEXED BY pins the plan, and fails loudly should a query stop matching its
# index's WHERE clause word for word.


def _system_clock() -> datetime:
    return datetime.now(UTC)


class SqliteStateStore(JobLeases, Roles, ManifestBatches):
    """:class:`archiver.state.base.StateStore` on SQLite. Open with :meth:`open`."""

    def __init__(self, db: Database, *, clock: Clock = _system_clock) -> None:
        """Wrap an open, migrated database; prefer :meth:`open`."""
        self._db = db
        self._write = db.write
        self._fetch = db.fetch
        self._clock = clock
        self._updates = GroupedUpdates(db)

    @classmethod
    async def open(
        cls, path: Path, *, clock: Clock = _system_clock, file_mode: int = 0o600
    ) -> SqliteStateStore:
        """Open (creating it and its directory if needed) and migrate the database at ``path``.

        A new file and folder get ``file_mode``. Raises ConfigError if the file
        was written by a newer archiver.
        """
        return cls(await Database.open(path, file_mode=file_mode), clock=clock)

    @classmethod
    async def open_read_only(cls, path: Path) -> SqliteStateStore | None:
        """An existing, current database opened for reading only; None if it is not one.

        Only the reading methods may be used; a write raises sqlite3.OperationalError.
        """
        db = await Database.open_read_only(path)
        return None if db is None else cls(db)

    async def __aenter__(self) -> SqliteStateStore:
        """``async with`` support: the store itself."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on leaving the ``async with`` block."""
        await self.close()

    async def close(self) -> None:
        """Close the database (safe to call twice)."""
        await self._db.close()

    # -- calls and jobs ----------------------------------------------------------

    async def add_calls(self, calls: Sequence[CallRecord], now: datetime) -> AddResult:
        """See :meth:`archiver.state.base.StateStore.add_calls`."""
        if not calls:
            return AddResult(new=0, updated=0, known=0)
        ts = encode_time(now)
        rows = [
            (
                str(c.provider),
                c.cdr_id,
                c.sip_call_id,
                encode_time(c.started_at),
                record_json(c),
                c.recording_url or None,
                JobState.PENDING if c.recording_url else JobState.NO_RECORDING,
            )
            for c in calls
        ]
        async with self._write() as db:
            # Two passes tell "new" from "updated" exactly: the insert ignores
            # known calls, then the update touches only those whose URL changed.
            # Both walk the page in order, so a CDR repeated inside one page
            # behaves as if the pages had come one by one.
            cur = await db.executemany(
                "INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
                " recording_url, state, next_attempt_at, first_seen_at, updated_at)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8)"
                " ON CONFLICT (cdr_id, provider) DO NOTHING",
                [(*r, ts) for r in rows],
            )
            new = cur.rowcount
            with_url = [r for r in rows if r[5] is not None]
            cur = await db.executemany(
                "UPDATE calls SET sip_call_id = ?3, started_at = ?4, record_json = ?5,"
                " recording_url = ?6, updated_at = ?7,"
                " next_attempt_at = CASE state WHEN 'no_recording' THEN ?7"
                " ELSE next_attempt_at END,"
                " state = CASE state WHEN 'no_recording' THEN 'pending' ELSE state END"
                " WHERE cdr_id = ?2 AND provider = ?1"
                " AND state NOT IN ('archived', 'failed') AND recording_url IS NOT ?6",
                [(*r[:6], ts) for r in with_url],
            )
            updated = cur.rowcount if with_url else 0
        return AddResult(new=new, updated=updated, known=len(calls) - new - updated)

    async def claim_due(
        self, now: datetime, limit: int, *, owner: str = "", lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """See :meth:`archiver.state.base.StateStore.claim_due`.

        The returned jobs' ``state`` is TRANSFERRING: what the store now holds.
        """
        if limit <= 0:
            return []
        ts = encode_time(now)
        async with self._write() as db:
            # One statement: the selection and the state change cannot interleave
            # with another claim, even from another process.
            rows = await db.execute_fetchall(
                "UPDATE calls SET state = 'transferring', updated_at = ?1,"
                " lease_owner = ?3, lease_until = ?4"
                " WHERE id IN (SELECT id FROM calls INDEXED BY calls_due"
                " WHERE state IN ('pending', 'waiting_ready') AND next_attempt_at <= ?1"
                " ORDER BY next_attempt_at, id LIMIT ?2)"
                " RETURNING next_attempt_at,"
                " id, record_json, recording_url, state, attempts, first_seen_at",
                (ts, limit, owner, encode_time(now + lease)),
            )
        # RETURNING gives no order guarantee: restore "oldest due first".
        ordered = sorted(rows, key=lambda r: (r[0], r[1]))
        return [_job(r[1:]) for r in ordered]

    async def mark_archived(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.mark_archived`.

        Idempotent: an already archived job is left as it is, so a replay can
        never detach it from the manifest batch it is already in.
        """
        line, archived_at = archived_line(entry, manifest_date)
        return await self._update(
            job_id,
            "UPDATE calls SET state = 'archived', attempts = attempts + 1, reason = NULL,"
            " failure_kind = NULL, recording_url = NULL,"
            " object_key = ?, sha256 = ?, size = ?, content_type = ?, archived_at = ?,"
            " manifest_line = ?, manifest_date = ?, updated_at = ?"
            " WHERE id = ? AND state != 'archived'",
            (entry.object_key, entry.sha256, entry.size, entry.content_type)
            + (encode_time(archived_at), line, manifest_date),
            owner,
        )

    async def mark_retry(
        self,
        job_id: int,
        state: JobState,
        reason: str,
        next_attempt_at: datetime,
        *,
        owner: str | None = None,
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.mark_retry`."""
        check_retry_state(state)
        return await self._update(
            job_id,
            "UPDATE calls SET state = ?, attempts = attempts + 1, reason = ?,"
            " next_attempt_at = ?, updated_at = ? WHERE id = ? AND state != 'archived'",
            (str(state), reason, encode_time(next_attempt_at)),
            owner,
        )

    async def postpone(
        self, job_id: int, reason: str, next_attempt_at: datetime, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.postpone`."""
        return await self._update(
            job_id,
            "UPDATE calls SET state = 'pending', reason = ?,"
            " next_attempt_at = ?, updated_at = ? WHERE id = ? AND state != 'archived'",
            (reason, encode_time(next_attempt_at)),
            owner,
        )

    async def mark_failed(
        self, job_id: int, reason: str, *, kind: FailureKind, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.mark_failed`.

        Counts the attempt that failed, so ``Failure.attempts`` is every attempt made.
        """
        return await self._update(
            job_id,
            "UPDATE calls SET state = 'failed', attempts = attempts + 1, reason = ?,"
            " failure_kind = ?, recording_url = NULL, updated_at = ?"
            " WHERE id = ? AND state != 'archived'",
            (reason, str(kind)),
            owner,
        )

    async def update_recording_url(self, job_id: int, url: str) -> None:
        """See :meth:`archiver.state.base.StateStore.update_recording_url`."""
        await self._update(
            job_id,
            "UPDATE calls SET recording_url = ?, updated_at = ?"
            " WHERE id = ? AND state != 'archived'",
            (url,),
        )

    async def _update(
        self, job_id: int, sql: str, params: Sequence[Any], owner: str | None = None
    ) -> bool:
        """Run ``sql`` on one job: ``params``, then updated_at and the job id are bound;
        with an ``owner``, only while that owner holds the job's lease. True if it changed.

        Every such statement spares archived jobs (a terminal state: a replayed
        call must not detach one from its manifest batch); an unknown id is a bug.
        """
        held = "" if owner is None else " AND state = 'transferring' AND lease_owner = ?"
        binds = (*params, encode_time(self._clock()), job_id) + (() if owner is None else (owner,))
        # Grouped with the other updates queued meanwhile into one transaction.
        return await self._updates.run(job_id, sql + held, binds)

    async def recheck_candidates(self, since: datetime, limit: int) -> list[Job]:
        """See :meth:`archiver.state.base.StateStore.recheck_candidates`."""
        if limit <= 0:
            return []
        rows = await self._fetch(
            "SELECT id, record_json, recording_url, state, attempts, first_seen_at FROM calls"
            " WHERE (state = 'no_recording' OR (state = 'failed'"
            " AND failure_kind IN (?3, ?4))) AND started_at >= ?1"
            " ORDER BY updated_at, id LIMIT ?2",
            (encode_time(since), limit, str(FailureKind.NEVER_AVAILABLE), str(FailureKind.NO_URL)),
        )
        return [_job(r) for r in rows]

    async def recheck(self, job_id: int, url: str | None, now: datetime) -> bool:
        """See :meth:`archiver.state.base.StateStore.recheck`."""
        ts = encode_time(now)
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE calls SET state = 'pending', recording_url = ?2, next_attempt_at = ?3,"
                " updated_at = ?3, attempts = 0, reason = NULL, failure_kind = NULL"
                " WHERE id = ?1 AND state IN ('no_recording', 'failed')"
                " AND ?2 IS NOT NULL AND recording_url IS NOT ?2",
                (job_id, url or None, ts),
            )
            if cur.rowcount:
                return True
            await db.execute(
                "UPDATE calls SET updated_at = ?2"
                " WHERE id = ?1 AND state IN ('no_recording', 'failed')",
                (job_id, ts),
            )
        return False

    async def retry_failed(self) -> int:
        """See :meth:`archiver.state.base.StateStore.retry_failed`."""
        return await self._requeue(
            "UPDATE calls SET state = 'pending', next_attempt_at = ?1, updated_at = ?1,"
            " attempts = 0, reason = NULL, failure_kind = NULL WHERE state = 'failed'"
        )

    async def retry_failed_between(self, provider: str, since: datetime, until: datetime) -> int:
        """See :meth:`archiver.state.base.StateStore.retry_failed_between`."""
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE calls SET state = 'pending', next_attempt_at = ?1, updated_at = ?1,"
                " attempts = 0, reason = NULL, failure_kind = NULL WHERE state = 'failed'"
                " AND provider = ?2 AND started_at >= ?3 AND started_at < ?4",
                (encode_time(self._clock()), provider, encode_time(since), encode_time(until)),
            )
            return cur.rowcount

    async def _requeue(self, sql: str) -> int:
        async with self._write() as db:
            cur = await db.execute(sql, (encode_time(self._clock()),))
            return cur.rowcount

    async def next_due_at(self) -> datetime | None:
        """See :meth:`archiver.state.base.StateStore.next_due_at`."""
        rows = await self._fetch(
            "SELECT min(next_attempt_at) FROM calls INDEXED BY calls_due"
            " WHERE state IN ('pending', 'waiting_ready')"
        )
        return decode_time(rows[0][0]) if rows and rows[0][0] is not None else None

    async def oldest_unarchived(self) -> datetime | None:
        """See :meth:`archiver.state.base.StateStore.oldest_unarchived`."""
        rows = await self._fetch(
            "SELECT min(first_seen_at) FROM calls INDEXED BY calls_state"
            " WHERE state IN ('pending', 'waiting_ready', 'transferring')"
        )
        return decode_time(rows[0][0]) if rows and rows[0][0] is not None else None

    async def counts(self) -> dict[JobState, int]:
        """See :meth:`archiver.state.base.StateStore.counts`."""
        result = dict.fromkeys(JobState, 0)
        for state, count in await self._fetch("SELECT state, count(*) FROM calls GROUP BY state"):
            result[JobState(state)] = int(count)
        return result

    async def failures(self, limit: int | None = None) -> list[Failure]:
        """See :meth:`archiver.state.base.StateStore.failures`."""
        rows = await self._fetch(
            "SELECT provider, cdr_id, sip_call_id, reason, attempts, updated_at, failure_kind"
            " FROM calls INDEXED BY calls_failed WHERE state = 'failed'"
            " ORDER BY updated_at DESC, id DESC LIMIT ?",
            (-1 if limit is None else max(limit, 0),),
        )
        # Positional, in the order of the SELECT above (Failure's field order).
        return [
            Failure(r[0], r[1], r[2], r[3] or "", r[4], decode_time(r[5]), stored_kind(r[6]))
            for r in rows
        ]

    async def find_job(self, ident: str) -> Job | None:
        """See :meth:`archiver.state.base.StateStore.find_job`.

        Surrounding whitespace is ignored; with several matches (the same id
        under two providers), the call that started last wins.
        """
        ident = ident.strip()
        if not ident:
            return None
        rows = await self._fetch(
            "SELECT id, record_json, recording_url, state, attempts, first_seen_at"
            " FROM calls WHERE cdr_id = ?1 OR sip_call_id = ?1"
            " ORDER BY started_at DESC, id DESC LIMIT 1",
            (ident,),
        )
        return _job(rows[0]) if rows else None

    # -- listing progress ---------------------------------------------------------

    async def is_window_done(self, provider: str, start: datetime, end: datetime) -> bool:
        """See :meth:`archiver.state.base.StateStore.is_window_done`."""
        rows = await self._fetch(
            "SELECT 1 FROM windows WHERE provider = ? AND start_at = ? AND end_at = ?",
            (str(provider), encode_time(start), encode_time(end)),
        )
        return bool(rows)

    async def mark_window_done(self, provider: str, start: datetime, end: datetime) -> None:
        """See :meth:`archiver.state.base.StateStore.mark_window_done`."""
        async with self._write() as db:
            await db.execute(
                "INSERT INTO windows (provider, start_at, end_at, done_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (str(provider), encode_time(start), encode_time(end), encode_time(self._clock())),
            )

    async def get_checkpoint(self, provider: str) -> datetime | None:
        """See :meth:`archiver.state.base.StateStore.get_checkpoint`."""
        rows = await self._fetch(
            "SELECT value FROM checkpoints WHERE provider = ?", (str(provider),)
        )
        return decode_time(rows[0][0]) if rows else None

    async def set_checkpoint(self, provider: str, value: datetime) -> None:
        """See :meth:`archiver.state.base.StateStore.set_checkpoint`."""
        async with self._write() as db:
            # Fixed-width UTC text compares like the times it encodes.
            await db.execute(
                "INSERT INTO checkpoints (provider, value) VALUES (?, ?)"
                " ON CONFLICT (provider) DO UPDATE SET value = excluded.value"
                " WHERE excluded.value > checkpoints.value",
                (str(provider), encode_time(value)),
            )


def _job(row: Iterable[Any]) -> Job:
    """A Job from (id, record_json, recording_url, state, attempts, first_seen_at)."""
    job_id, stored_record, url, state, attempts, first_seen_at = row
    return stored_job(job_id, stored_record, url, state, attempts, decode_time(first_seen_at))
