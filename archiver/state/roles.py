"""Named leases ("roles") in the SQLite state: which process holds a role, and until when.

A role is a row (role, owner, until). Taking and renewing are one upsert that
only overwrites the row when it is free, expired or already the owner's, so two
processes racing for a free role cannot both win: SQLite runs one write
transaction at a time, and each re-reads the row inside its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from archiver.state.batches import encode_time


class Roles:
    """The role part of :class:`archiver.state.sqlite.SqliteStateStore`."""

    _write: Callable[..., AbstractAsyncContextManager[aiosqlite.Connection]]
    _fetch: Callable[..., Awaitable[list[Any]]]

    async def hold_role(self, role: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """See :meth:`archiver.state.base.StateStore.hold_role`."""
        if not owner:
            raise ValueError("hold_role: the owner must be named")
        async with self._write() as db:
            # RETURNING yields the row only when it was inserted or updated: a
            # running lease of another owner leaves it untouched (and no row).
            rows = await db.execute_fetchall(
                "INSERT INTO roles (role, owner, until) VALUES (?1, ?2, ?3)"
                " ON CONFLICT (role) DO UPDATE SET owner = excluded.owner,"
                " until = excluded.until WHERE roles.owner = excluded.owner OR roles.until <= ?4"
                " RETURNING owner",
                (role, owner, encode_time(now + lease), encode_time(now)),
            )
        return bool(list(rows))

    async def release_role(self, role: str, owner: str) -> None:
        """See :meth:`archiver.state.base.StateStore.release_role`."""
        async with self._write() as db:
            await db.execute("DELETE FROM roles WHERE role = ? AND owner = ?", (role, owner))

    async def role_holder(self, role: str, now: datetime) -> str | None:
        """See :meth:`archiver.state.base.StateStore.role_holder`."""
        rows = await self._fetch(
            "SELECT owner FROM roles WHERE role = ? AND until > ?", (role, encode_time(now))
        )
        return str(rows[0][0]) if rows else None
