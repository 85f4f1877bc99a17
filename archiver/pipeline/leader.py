"""``run`` replicas: only the leader polls, sweeps and writes the manifest; all transfer.

Every replica's producer is a :class:`Leadership`: it tries to take the role
:data:`~archiver.pipeline.role_keeper.LEADER` every renewal interval (a third of
``ARCHIVER_LEADER_LEASE``) and, while it holds it, runs the leader-only tasks.
A leader that cannot renew the role in time stops them at once, before its
lease ends (see :mod:`archiver.pipeline.role_keeper`); a dead leader's role lapses
after its lease and a follower takes it at its next try, so a new leader polls
within one lease plus one renewal interval. A leader stopping gracefully gives
the role up, and another replica takes it at its next try.
"""

from __future__ import annotations

import asyncio
import logging

from archiver.metrics import Metrics
from archiver.pipeline.flusher import ManifestFlusher
from archiver.pipeline.intake import Concurrently, Health, Intake, Producer
from archiver.pipeline.role_keeper import LEADER, RoleKeeper
from archiver.pipeline.rollups import RollupTrigger
from archiver.waiting import wait_set

log = logging.getLogger("archiver.pipeline")


class _Flushing:
    """The manifest flusher as one of the leader's producers, and its rollups beside it."""

    def __init__(self, flusher: ManifestFlusher) -> None:
        self.flusher = flusher
        self.rollups = RollupTrigger(flusher)

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        rolling = asyncio.create_task(self.rollups.run(stop), name="rollups")
        try:
            await self.flusher.run(stop)
        except Exception:
            # Not hidden: it ends the run (Concurrently re-raises it); named here
            # so it is not taken for a listing's error.
            log.exception("unexpected error while writing the manifest")
            raise
        finally:
            # A rollup under way is left unfinished (the next one finishes it).
            rolling.cancel()
            await asyncio.gather(rolling, return_exceptions=True)


class Leadership:
    """The producer of every ``run`` replica: the leader-only tasks, while leading."""

    def __init__(
        self,
        roles: RoleKeeper,
        producers: list[Producer],
        flusher: ManifestFlusher,
        *,
        health: Health,
        metrics: Metrics,
    ) -> None:
        self.roles = roles
        self.tasks = Concurrently(*producers, _Flushing(flusher))
        self.health = health
        self.metrics = metrics

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """Lead whenever the role can be had, until ``stop``."""
        while not stop.is_set():
            if await self.roles.take(LEADER):
                if await self._lead(into, stop):
                    return
            else:
                # Ready without polling: the leader polls (until then, not ready).
                self.health.follower = True
            await wait_set(stop, self.roles.renew_every)

    async def _lead(self, into: Intake, stop: asyncio.Event) -> bool:
        """Run the leader's tasks while the role is held; True when they ended (a stop)."""
        before = self.roles.seen.pop(LEADER, None)
        if before is not None:
            self.metrics.leadership_taken_over.inc()
            log.info("leader now, in place of %s: polling, sweeping, writing the manifest", before)
        else:
            log.info("leader now: polling, sweeping, writing the manifest")
        self._leading(True)
        finished = False
        try:
            finished = await self.roles.hold_while(LEADER, self.tasks.run(into, stop))
        finally:
            self._leading(False)
            # A stop gives the role up on purpose: nothing to tell the operator.
            if not finished and not stop.is_set():
                log.info("no longer the leader: polls, sweeps and manifest writes stopped here")
        return finished

    def _leading(self, leading: bool) -> None:
        self.health.follower = not leading
        self.metrics.leader.set(1 if leading else 0)
