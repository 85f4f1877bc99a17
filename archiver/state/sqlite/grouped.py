"""Group commit for the SQLite store's one-job outcome updates.

Each archived, retried, postponed or failed job is one small UPDATE. Run
alone, each costs a whole transaction (BEGIN IMMEDIATE, the statement, COMMIT,
and a WAL append) on the single connection; a backfill spent 7.6% of its
samples there. Updates issued while the connection is busy are instead queued
and run together in one transaction by one drain task; every caller awaits its
own outcome, which is set only after the COMMIT that holds its update, so a
crash loses exactly what it lost before: updates whose callers had not
returned yet. A group goes to the connection's thread in one hand-off (BEGIN,
its updates, COMMIT), not one per statement: each hand-off wakes that thread
and then the event loop, which cost more CPU than the statements themselves.

A statement that fails (an I/O error, a locked file) rolls back the group and
the group's updates are run again one transaction each, so one bad update
fails only its own caller. A caller cancelled while its update is still queued
takes it out of the group; one cancelled after its statement ran may still
see it committed, which every outcome tolerates (a replay of the same update
changes nothing, or the lease has moved on and the update is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from archiver.state.queries.jobs import JOB_EXISTS
from archiver.state.sqlite.database import Database

GROUP_LIMIT = 256  # updates per transaction: bounds how long other writers wait


@dataclass(frozen=True, slots=True)
class _Update:
    sql: str
    binds: Sequence[Any]
    job_id: int
    outcome: asyncio.Future[bool]


class GroupedUpdates:
    """Runs one-job UPDATEs on a :class:`Database`, queued ones together in one transaction."""

    def __init__(self, db: Database, *, limit: int = GROUP_LIMIT) -> None:
        """Group updates on ``db``, at most ``limit`` per transaction."""
        self._db = db
        self._limit = limit
        self._queue: list[_Update] = []
        self._drain: asyncio.Task[None] | None = None

    async def run(self, job_id: int, sql: str, binds: Sequence[Any]) -> bool:
        """Run ``sql`` with ``binds`` on job ``job_id``: True if it changed a row.

        Returns after the commit that holds the update. KeyError if no job has
        that id; an error of the statement itself is raised here and only here.
        """
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Update(sql, binds, job_id, outcome))
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_queue())
        # Not shielded: cancelling the caller cancels its future, and the drain
        # task skips an update whose future is already done.
        return await outcome

    async def _drain_queue(self) -> None:
        group: list[_Update] = []
        try:
            while self._queue:
                group = self._take()
                if not group:
                    continue  # every caller queued was cancelled
                try:
                    # The whole group in one hand-off to the connection's thread:
                    # BEGIN, every update, COMMIT.
                    results = await self._db.transaction_now(partial(_apply_all, group=group))
                except Exception:  # noqa: BLE001 - retried one by one below, each error to its caller
                    await self._one_by_one(group)
                else:
                    for update, result in zip(group, results, strict=True):
                        _settle(update, result)
                group = []
        finally:
            # Only reached early if this task itself is cancelled (the loop
            # shutting down): nobody must wait for an outcome that never comes.
            for update in group + self._queue:
                update.outcome.cancel()
            self._queue.clear()
            self._drain = None

    def _take(self) -> list[_Update]:
        group = [u for u in self._queue[: self._limit] if not u.outcome.done()]
        del self._queue[: self._limit]
        return group

    async def _one_by_one(self, group: list[_Update]) -> None:
        for update in group:
            if update.outcome.done():
                continue
            try:
                result = await self._db.transaction_now(partial(_apply, update=update))
            except Exception as exc:  # noqa: BLE001 - handed to the caller, not swallowed
                if not update.outcome.done():
                    update.outcome.set_exception(exc)
            else:
                _settle(update, result)


def _apply_all(conn: sqlite3.Connection, group: list[_Update]) -> list[bool | KeyError]:
    return [_apply(conn, u) for u in group]


def _apply(conn: sqlite3.Connection, update: _Update) -> bool | KeyError:
    """Run one update inside the open transaction; an unknown job id as its KeyError."""
    cur = conn.execute(update.sql, update.binds)
    if cur.rowcount > 0:
        return True
    found = conn.execute(JOB_EXISTS.sqlite, (update.job_id,)).fetchall()
    return False if found else KeyError(f"no job with id {update.job_id}")


def _settle(update: _Update, result: bool | KeyError) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):  # the caller was cancelled
        if isinstance(result, KeyError):
            update.outcome.set_exception(result)
        else:
            update.outcome.set_result(result)
