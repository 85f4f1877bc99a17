"""Named leases ("roles") a process takes in the shared state, and work done under one.

Work that must run in one place at a time runs under a role: the polls, the
sweep and the manifest flusher of ``run`` replicas under :data:`LEADER`, each
write of the manifest chain under :data:`MANIFEST`, a backfill window's listing
under its :func:`window_role`. The role is renewed three times per lease while
the work runs. A holder that cannot renew it in time stops the work at once, a
third of a lease before the role's end, so the next holder never starts while
it still works (machines' clocks must agree to within that third).

A role held by a process of this host that has ended is taken at once (its
lease need not run out): a restarted ``run`` polls again without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from archiver.pipeline.owner_tokens import holder_is_gone
from archiver.state.protocols import Roles

log = logging.getLogger("archiver.pipeline")

LEADER = "leader"
MANIFEST = "manifest"


def window_role(provider: str, start: datetime, end: datetime) -> str:
    """The role of a backfill window's listing: one process lists it at a time."""
    return f"window:{provider}:{start.isoformat()}:{end.isoformat()}"


class RoleKeeper:
    """One process's hand on roles: takes them, and runs work while one is held."""

    def __init__(
        self,
        roles: Roles,
        owner: str,
        lease: timedelta,
        clock: Callable[[], datetime],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.roles = roles
        self.owner = owner
        self.lease = lease
        self._clock = clock
        self._monotonic = monotonic
        # The last holder other than this process seen on each role (takeovers).
        self.seen: dict[str, str] = {}

    @property
    def renew_every(self) -> float:
        """Seconds between renewals of a held role (and between tries of a busy one)."""
        return self.lease.total_seconds() / 3

    async def take(self, role: str) -> bool:
        """Take (or renew) ``role``; True when this process holds it now."""
        if await self.roles.hold_role(role, self.owner, self._clock(), self.lease):
            return True
        holder = await self.roles.role_holder(role, self._clock())
        if holder is not None and holder != self.owner:
            self.seen[role] = holder
            if not holder_is_gone(holder):
                return False
            await self.roles.release_role(role, holder)
        return await self.roles.hold_role(role, self.owner, self._clock(), self.lease)

    async def holder(self, role: str) -> str | None:
        """Who holds ``role`` now (this process included), or None."""
        return await self.roles.role_holder(role, self._clock())

    async def release(self, role: str) -> None:
        """Give ``role`` up, if this process holds it."""
        await self.roles.release_role(role, self.owner)

    async def hold_while(
        self,
        role: str,
        work: Coroutine[Any, Any, None],
        *,
        release_if_cancelled: bool = True,
    ) -> bool:
        """Run ``work`` under ``role``, just taken with :meth:`take`, renewing it.

        True when the work finished (the role is then given up; an error of the
        work's is raised after that). False when the role was lost first: taken
        by another process, or not renewed in time because the state did not
        answer; the work is cancelled at once and the role left to lapse. If
        this call is cancelled, so is the work; the role is given up unless
        ``release_if_cancelled`` is False (what the work had under way might
        still land, so no one else should start before the lease ends).
        """
        lease = self.lease.total_seconds()
        deadline = self._monotonic() + lease * 2 / 3
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                wait = max(min(self.renew_every, deadline - self._monotonic()), 0.0)
                await asyncio.wait({task}, timeout=wait)
                if task.done():
                    break
                renewed_at = self._monotonic()
                if renewed_at >= deadline or not await self._renew(role, deadline - renewed_at):
                    log.warning("role %s not renewed in time: its work is stopped", role)
                    return False
                deadline = renewed_at + lease * 2 / 3
        except asyncio.CancelledError:
            await _cancel(task)
            if release_if_cancelled:
                await asyncio.shield(self.release(role))
            raise
        finally:
            # Lost, or the state failed while renewing: the work stops before the lease ends.
            await _cancel(task)
        try:
            task.result()
        finally:
            await self.release(role)
        return True

    async def _renew(self, role: str, within: float) -> bool:
        """One renewal: False when the role was lost, or the state did not answer in time."""
        renewal = asyncio.ensure_future(
            self.roles.hold_role(role, self.owner, self._clock(), self.lease)
        )
        try:
            await asyncio.wait({renewal}, timeout=within)
        finally:
            if not renewal.done():
                # Not waited for: a database call blocked on a lock ends only when the
                # lock is let go, and the work must stop before the lease ends.
                renewal.cancel()
                _left_to_end(renewal)
        if not renewal.done() or renewal.cancelled():
            return False
        if not renewal.result():
            log.warning("role %s was taken by another process", role)
            return False
        return True


_LEFT: set[asyncio.Future[bool]] = set()


def _left_to_end(renewal: asyncio.Future[bool]) -> None:
    """Keep a renewal given up on until it ends, and note how it ended."""
    _LEFT.add(renewal)

    def ended(done: asyncio.Future[bool]) -> None:
        _LEFT.discard(done)
        if not done.cancelled() and done.exception() is not None:
            log.warning("a role renewal given up on failed: %s", done.exception())

    renewal.add_done_callback(ended)


async def _cancel(task: asyncio.Future[None]) -> None:
    """Cancel ``task`` unless it is done, and wait for it to end."""
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
