"""The daemon's slower sweep, for what comes late.

The polls watch counts, which cannot see a recording URL that appears on a CDR
already listed, nor a CDR whose call started before the polls' lookback. Every
``sweep_interval`` the sweep therefore re-lists, in full, everything that
started within the longest call the operator declares (``longest_call``, at
least the lookback) plus one sweep interval, and asks the source again, by id,
about recordings that may still come (no URL yet, or failed as never
available) until the ready deadline.

A CDR new to the state that the sweep finds beyond the polls' lookback is
counted in ``archiver_cdrs_found_late_total`` and logged: the calls or the
provider's backlog are longer than the lookback (``beyond="lookback"``), or
even than the declared longest call (``beyond="longest_call"``), in which case
a longer call would be missed altogether.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from archiver.errors import ArchiverError, FatalError
from archiver.metrics import Metrics
from archiver.pipeline.intake import Intake
from archiver.pipeline.repeating import Repeating, run_every
from archiver.pipeline.stats import PipelineConfig
from archiver.sources.base import CdrSource
from archiver.state.protocols import Rechecks
from archiver.timeutil import split_windows

log = logging.getLogger("archiver.pipeline")


@dataclass
class SweepReport:
    """What one sweep found."""

    requests: int = 0
    listed: int = 0
    new: int = 0  # new CDRs inside the lookback (the polls had not seen them)
    late: int = 0  # new CDRs beyond the lookback
    updated: int = 0  # known CDRs whose recording URL appeared or changed
    looked_up: int = 0
    requeued: int = 0  # recordings given another chance after a lookup by id


class Sweeper:
    """Re-lists the declared reach and looks up late recordings by id, every
    ``sweep_interval`` seconds, starting with a sweep at start-up."""

    def __init__(
        self,
        source: CdrSource,
        rechecks: Rechecks,
        config: PipelineConfig,
        *,
        clock: Callable[[], datetime],
        metrics: Metrics,
        ready_deadline: float,
    ) -> None:
        self.source = source
        self.rechecks = rechecks
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.ready_deadline = timedelta(seconds=ready_deadline)
        # The first sweep after a start catches up on what started before the
        # lookback: nothing is "late" yet, so it counts and logs none of it.
        self._caught_up = False

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """Sweep every ``sweep_interval`` until ``stop``."""
        await run_every(
            lambda: self.sweep_once(into, stop),
            self.config.run.sweep_interval,
            stop,
            producer=Repeating.SWEEP,
            metrics=self.metrics,
        )

    async def sweep_once(self, into: Intake, stop: asyncio.Event) -> SweepReport:
        """One sweep: the re-listing, then the lookups by id."""
        report = SweepReport()
        cfg = self.config.run
        now = self.clock()
        end = now - timedelta(seconds=cfg.settle)
        inner = now - timedelta(seconds=cfg.lookback)
        reach = now - timedelta(seconds=max(cfg.longest_call, cfg.lookback))
        outer = reach - timedelta(seconds=cfg.sweep_interval)
        for start, stop_at, beyond in (
            (outer, reach, "longest_call"),
            (reach, inner, "lookback"),
            (inner, end, None),
        ):
            if not await self._list(into, stop, start, stop_at, beyond, report):
                return report
        self._caught_up = True
        await self._lookups(stop, now, report)
        log.info(
            "sweep: %d request(s), listed %d, new %d, found late %d, updated %d;"
            " looked up %d by id, %d given another chance",
            report.requests,
            report.listed,
            report.new,
            report.late,
            report.updated,
            report.looked_up,
            report.requeued,
        )
        return report

    async def _list(
        self,
        into: Intake,
        stop: asyncio.Event,
        start: datetime,
        end: datetime,
        beyond: str | None,
        report: SweepReport,
    ) -> bool:
        """List [start, end) in full; False if a stop came first."""
        size = timedelta(seconds=self.config.run.window)
        for a, b in split_windows(start, end, size, self.source.granularity):
            async for page in self.source.list_window(a, b):
                report.requests += 1
                result = await into.take(page)
                report.listed += len(page.records)
                report.updated += result.updated
                self.metrics.sweep_findings.labels("updated").inc(result.updated)
                if beyond is None:
                    report.new += result.new
                    self.metrics.sweep_findings.labels("new").inc(result.new)
                elif result.new and self._caught_up:
                    report.late += result.new
                    self.metrics.found_late.labels(beyond).inc(result.new)
                    log.warning(
                        "found %d CDR(s) of calls that started between %s and %s, beyond"
                        " ARCHIVER_%s: raise it if this recurs",
                        result.new,
                        a.isoformat(),
                        b.isoformat(),
                        beyond.upper(),
                    )
                if stop.is_set():
                    return False
        return True

    async def _lookups(self, stop: asyncio.Event, now: datetime, report: SweepReport) -> None:
        """Ask the source again, by id, about recordings that may still come."""
        since = now - self.ready_deadline
        for job in await self.rechecks.recheck_candidates(since, self.config.run.sweep_lookups):
            if stop.is_set():
                return
            call = job.call
            if call.answered_at is None and not call.billsec:
                # A call nobody answered has nothing to record: no request for it.
                await self.rechecks.recheck(job.id, None, now)
                continue
            try:
                fresh = await self.source.lookup(call.cdr_id)
            except FatalError:
                raise
            except ArchiverError as exc:
                log.warning("lookup of %s failed: %s", call.sip_call_id, exc)
                continue
            report.looked_up += 1
            url = fresh.recording_url if fresh is not None else None
            if await self.rechecks.recheck(job.id, url, now):
                report.requeued += 1
                self.metrics.sweep_findings.labels("requeued").inc()
                log.info(
                    "the recording of %s has a new URL: queued again",
                    call.sip_call_id,
                    extra={"sip_call_id": call.sip_call_id},
                )
