"""A run's hold on shared work: its storage marker, its jobs' leases, their heartbeat.

Several processes may work on one state (``run`` and ``backfill`` at once).
What one of them starts with must touch only what is abandoned: jobs whose
lease ran out, uploads and temporary files older than a bound. Whatever this
run claims is held under a lease that the heartbeat renews while it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from archiver.errors import ArchiverError, StateUnavailableError
from archiver.metrics import Metrics
from archiver.pipeline.owner_tokens import holder_is_gone, mark_live, owner_token
from archiver.pipeline.storage_binding import StorageBinding
from archiver.state.protocols import JobLeases, WriterIdentity
from archiver.storage.base import ObjectStore
from archiver.waiting import wait_set

log = logging.getLogger("archiver.pipeline")


class RunLeases:
    """Start-up, heartbeat and end of one run's hold (see the module docstring)."""

    def __init__(
        self,
        leases: JobLeases,
        identity: WriterIdentity,
        store: ObjectStore,
        run_id: str,
        lease: float,
        abandoned_after: float,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self.owner = owner_token(run_id)
        self._metrics = metrics or Metrics()
        self.lease = timedelta(seconds=lease)
        self._leases = leases
        self._identity = identity
        self._store = store
        self._abandoned_after = timedelta(seconds=abandoned_after)
        self._clock = clock
        self._binding: StorageBinding | None = None

    async def start(self) -> None:
        """Bind the storage to this state (ConfigError if another state holds it), then
        take back what other runs abandoned, and only that."""
        mark_live(self.owner, True)
        now = self._clock()
        self._binding = StorageBinding(
            self._store, await self._identity.writer_id(), self.owner, self.lease
        )
        await self._binding.acquire(now)
        released = await self._leases.release_expired(now)
        # A run killed on this machine a moment ago need not be waited for.
        for holder in await self._leases.lease_holders(now):
            if holder != self.owner and holder_is_gone(holder):
                released += await self._leases.release_transferring(holder)
        self._metrics.leases_taken_over.inc(released)
        if released:
            log.info("%d recording(s) left in flight by an ended run are queued again", released)
        # Alone on the storage: whatever is incomplete was abandoned (by a run
        # killed a moment ago, say). Beside others: only what is old enough.
        bound = now - self._abandoned_after if self._binding.peers else None
        cleaned = await self._store.cleanup_incomplete(bound)
        if cleaned:
            log.info("removed %d incomplete upload(s) left by an ended run", cleaned)

    async def beat_forever(self, stop: asyncio.Event) -> None:
        """Renew this run's leases and marker three times per lease, until ``stop``;
        on the way, free the jobs of runs that stopped beating."""
        interval = self.lease.total_seconds() / 3
        while not stop.is_set():
            await wait_set(stop, interval)
            if stop.is_set():
                return
            try:
                await self.beat()
            except StateUnavailableError:
                # Past ARCHIVER_STATE__OUTAGE: the run ends on this error, said once
                # by whichever part of it meets it next.
                return
            except ArchiverError as exc:
                # A storage hiccup: the next beat, well inside the lease, tries again.
                log.warning("heartbeat failed, retrying: %s", exc)

    async def beat(self) -> None:
        """One heartbeat."""
        now = self._clock()
        held = await self._leases.renew_leases(self.owner, now, self.lease)
        self._metrics.leases_held.set(held)
        if self._binding is not None:
            await self._binding.renew(now)
        released = await self._leases.release_expired(now)
        self._metrics.leases_taken_over.inc(released)
        if released:
            log.info("%d recording(s) of a run that stopped beating are queued again", released)

    async def end(self) -> None:
        """Give back what this run claimed and did not finish; remove its marker."""
        mark_live(self.owner, False)
        await self._leases.release_transferring(self.owner)
        if self._binding is not None:
            with contextlib.suppress(ArchiverError):
                await self._binding.release()
