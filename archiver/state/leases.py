"""Job leases in the SQLite state: who holds a recording in flight, and until when.

A claim (``claim_due``) records the holder and the lease's end; the holder's
heartbeat moves that end forward; whatever a holder stops holding, by its end
or by its lease running out, goes back to pending, due at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from archiver.state.batches import encode_time

# Every statement names the state index: the jobs in flight are few, the others many.
_RELEASE = (
    "UPDATE calls INDEXED BY calls_state SET state = 'pending', next_attempt_at = ?1,"
    " updated_at = ?1, lease_owner = NULL, lease_until = NULL WHERE state = 'transferring'"
)


class JobLeases:
    """The lease part of :class:`archiver.state.sqlite.SqliteStateStore`."""

    _write: Callable[..., AbstractAsyncContextManager[aiosqlite.Connection]]
    _fetch: Callable[..., Awaitable[list[Any]]]
    _clock: Callable[[], datetime]

    async def renew_leases(self, owner: str, now: datetime, lease: timedelta) -> int:
        """See :meth:`archiver.state.base.StateStore.renew_leases`."""
        return await self._run(
            "UPDATE calls INDEXED BY calls_state SET lease_until = ?1"
            " WHERE state = 'transferring' AND lease_owner = ?2",
            (encode_time(now + lease), owner),
        )

    async def release_transferring(self, owner: str | None = None) -> int:
        """See :meth:`archiver.state.base.StateStore.release_transferring`."""
        return await self._run(
            _RELEASE + " AND (?2 IS NULL OR lease_owner = ?2)",
            (encode_time(self._clock()), owner),
        )

    async def release_expired(self, now: datetime) -> int:
        """See :meth:`archiver.state.base.StateStore.release_expired`.

        A job with no lease end (left in flight by an archiver before leases) is expired.
        """
        return await self._run(
            _RELEASE + " AND (lease_until IS NULL OR lease_until <= ?1)", (encode_time(now),)
        )

    async def lease_holders(self, now: datetime) -> list[str]:
        """See :meth:`archiver.state.base.StateStore.lease_holders`."""
        rows = await self._fetch(
            "SELECT DISTINCT lease_owner FROM calls INDEXED BY calls_state"
            " WHERE state = 'transferring' AND lease_until > ? AND lease_owner IS NOT NULL",
            (encode_time(now),),
        )
        return sorted(str(r[0]) for r in rows)

    async def _run(self, sql: str, params: tuple[Any, ...]) -> int:
        async with self._write() as db:
            cur = await db.execute(sql, params)
            return cur.rowcount
