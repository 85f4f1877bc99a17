"""The pipeline: a producer lists CDRs into the state store; a dispatcher feeds due
jobs through a bounded queue to a fixed number of transfer workers; a flusher
writes the manifest in batches.

The backlog lives in the state store, not in memory: the queue holds at most
``concurrency`` jobs. The backfill and the daemon are this one pipeline with a
different stop rule (``stop_when_idle``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from archiver.errors import ArchiverError, FatalError, StorageError
from archiver.logs import EACH
from archiver.manifest.writer import HeadHook
from archiver.metrics import Metrics
from archiver.pipeline.adoption import ArchiveGuard, lookback_span
from archiver.pipeline.context import RunContext
from archiver.pipeline.flusher import ManifestFlusher
from archiver.pipeline.handling import JobHandler
from archiver.pipeline.intake import Health, Producer
from archiver.pipeline.leader import Leadership
from archiver.pipeline.policy import RetryPolicy, claimable
from archiver.pipeline.poller import Poller
from archiver.pipeline.producers import Window, WindowLister
from archiver.pipeline.role_keeper import RoleKeeper
from archiver.pipeline.run_leases import RunLeases
from archiver.pipeline.stats import PipelineConfig, RunStats
from archiver.pipeline.sweep import Sweeper
from archiver.pipeline.transfer import Transferrer
from archiver.sources.base import CdrSource, Page
from archiver.state.base import AddResult, Job
from archiver.state.protocols import State
from archiver.storage.base import ObjectStore
from archiver.waiting import wait_set

log = logging.getLogger("archiver.pipeline")


def utc_now() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


class Pipeline:
    """One run of the archive pipeline."""

    def __init__(
        self,
        source: CdrSource,
        state: State,
        store: ObjectStore,
        transferrer: Transferrer,
        retry: RetryPolicy,
        config: PipelineConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
        on_head: HeadHook | None = None,
        guard: ArchiveGuard | None = None,
    ) -> None:
        self.source = source
        self.state = state
        self.store = store
        self.transferrer = transferrer
        self.retry = retry
        self.config = config
        self.clock = clock
        self.stats = RunStats()
        self.metrics = metrics or Metrics()
        # What /healthz and /readyz read; the service holds it, not the pipeline.
        self.health = Health(transfer_deadline=transferrer.deadline)
        self.stop_event = asyncio.Event()
        # True once someone (a signal, a fatal error) asked the run to stop early.
        self.stop_requested = False
        self.leases = RunLeases(
            state.leases,
            state.batches,
            store,
            uuid.uuid4().hex[:12],
            config.run.lease,
            config.storage.abandoned_after,
            self.clock,
            metrics=self.metrics,
        )
        # Named leases: the leader of run replicas, the manifest's writer, backfill windows.
        self.roles = RoleKeeper(
            state.roles, self.leases.owner, timedelta(seconds=config.run.leader_lease), self.clock
        )
        self._wake = asyncio.Event()
        self.flusher = ManifestFlusher(
            state.batches,
            store,
            interval=config.run.manifest_interval,
            max_lines=config.run.manifest_batch,
            written=self._manifest_written,
            # Called after each chain head written: the trusted timestamp, when configured.
            on_head=on_head,
            roles=self.roles,
            guard=guard,
            rollup=(config.run.rollup_objects, config.run.rollup_age),  # run: the leader's
        )
        # Asks the archive (its index brought up to date over ``span``) before a line is cut.
        self.guard = guard
        self.span: tuple[datetime, datetime] | None = None
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=config.run.concurrency)
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # The daemon outlives a storage outage; the backfill stops (a re-run finishes).
        self._survive_storage_errors = False
        self._paused_until = 0.0
        self._fatal: BaseException | None = None
        self._flusher_here = True
        self.handler = JobHandler(
            RunContext(
                source,
                state.outcomes,
                store,
                # Read at each use: a test may set the pipeline's clock after building it.
                clock=lambda: self.clock(),
                stats=self.stats,
                metrics=self.metrics,
                health=self.health,
                owner=self.leases.owner,
            ),
            transferrer,
            retry,
            config,
            line_added=self.flusher.line_added,
            guard=guard,
        )

    def stop(self) -> None:
        """Ask for a graceful stop: no new work; in-flight transfers get the grace period."""
        if not self.stop_requested:
            # The operator sees the signal was taken, and how long the stop may take.
            log.info(
                "stopping: no new work; transfers in flight get up to %.0fs to finish",
                self.config.run.grace,
            )
        self.stop_requested = True
        self.stop_event.set()
        self._wake.set()

    async def backfill(self, windows: Sequence[Window]) -> RunStats:
        """List every window, archive every recording, then stop (the backfill's rule)."""
        self.stats.windows_total = len(windows)
        self.span = (min(w[0] for w in windows), max(w[1] for w in windows)) if windows else None
        lister = WindowLister(self.source, self.state.progress, windows, self.stats, self.roles)
        return await self.run(lister, stop_when_idle=True)

    async def run(
        self, producer: Producer, *, stop_when_idle: bool, flusher: bool = True
    ) -> RunStats:
        """Start up, run producer, dispatcher, workers and (unless the producer runs it,
        as the daemon's leader does) the flusher until the stop rule holds."""
        self._survive_storage_errors = not stop_when_idle
        self._flusher_here = flusher
        await self.leases.start()
        if self.guard is not None:  # the running marker is ours: no other state writes
            await self.guard.start(self.span, self.config.source.tz)
        heartbeat = asyncio.create_task(self.leases.beat_forever(self.stop_event), name="heartbeat")
        try:
            return await self._run(producer, stop_when_idle)
        finally:
            self.stop_event.set()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await self.leases.end()

    async def _run(self, producer: Producer, stop_when_idle: bool) -> RunStats:
        await self.flusher.flush()
        workers = [
            asyncio.create_task(self._worker(), name=f"transfer-{i}")
            for i in range(self.config.run.concurrency)
        ]
        producer_task = asyncio.create_task(self._produce(producer), name="producer")
        flusher = asyncio.create_task(self._flush_forever(), name="manifest-flusher")
        hard = False
        try:
            await self._dispatch(producer_task, stop_when_idle)
        except asyncio.CancelledError:
            # A second signal: stop at once. Transfers are cancelled (a multipart
            # upload is aborted), nothing half-written becomes visible.
            hard = True
            raise
        finally:
            await self._shutdown(workers, producer_task, flusher, hard=hard)
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    async def daemon(self) -> RunStats:
        """Poll (and sweep) the source forever (until ``stop``), archiving as CDRs arrive."""
        poller = Poller(
            self.source,
            self.state.progress,
            self.state.reports,
            self.config,
            clock=self.clock,
            health=self.health,
            metrics=self.metrics,
            stats=self.stats,
        )
        sweeper = Sweeper(
            self.source,
            self.state.rechecks,
            self.config,
            clock=self.clock,
            metrics=self.metrics,
            ready_deadline=self.retry.ready_deadline,
        )
        # Every replica transfers; only the leader polls, sweeps and writes the manifest.
        self.flusher.watch_others = True
        self.span = lookback_span(self.clock(), self.config.run.lookback)
        leadership = Leadership(
            self.roles, [poller, sweeper], self.flusher, health=self.health, metrics=self.metrics
        )
        return await self.run(leadership, stop_when_idle=False, flusher=False)

    async def take(self, page: Page) -> AddResult:
        """The producers' intake: remember a page of CDRs and wake the dispatcher."""
        calls = page.records
        result = await self.state.jobs.add_calls(calls, self.clock())
        self.stats.listed += len(calls)
        self.stats.new += result.new
        self.metrics.cdrs_seen.inc(result.new)
        self.stats.updated += result.updated
        self.stats.duplicates += page.duplicates
        self.stats.new_without_recording += sum(1 for c in calls if not c.has_recording)
        for reason in page.skipped:
            self.stats.bad_records += 1
            log.warning("skipped a CDR the provider sent: %s", reason, extra=EACH)  # each one
        self._wake.set()
        return result

    async def _produce(self, producer: Producer) -> None:
        try:
            await producer.run(self, self.stop_event)
        except ArchiverError as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - not hidden: it ends the run and is re-raised
            # A bug while listing must not end the run as if every window were listed.
            log.exception("unexpected error while listing the source")
            self._fail(exc)
        finally:
            self.stats.listing_done = True
            self._wake.set()

    # -- dispatcher and workers ------------------------------------------------------

    async def _dispatch(self, producer_task: asyncio.Task[None], stop_when_idle: bool) -> None:
        idle_since: float | None = None
        while not self.stop_event.is_set():
            self.health.beat()
            self._wake.clear()
            free = claimable(self._queue.qsize(), self._queue.maxsize)
            if time.monotonic() < self._paused_until:
                free = 0
            jobs = (
                await self.state.jobs.claim_due(
                    self.clock(), free, owner=self.leases.owner, lease=self.leases.lease
                )
                if free > 0
                else []
            )
            for job in jobs:
                self._queue.put_nowait(job)
            if jobs:
                idle_since = None
                continue
            wait = 1.0
            if stop_when_idle and producer_task.done() and self._queue.empty() and self._busy == 0:
                due = await self.state.jobs.next_due_at()
                if due is None:
                    return
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= self.config.run.backfill_max_wait:
                    log.info("stopping: the remaining retries are not due within the wait limit")
                    return
                wait = min(max((due - self.clock()).total_seconds(), 0.05), 1.0)
            await wait_set(self._wake, wait)

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            self._busy += 1
            self._idle.clear()
            self.stats.in_flight = self._busy
            self.metrics.in_flight.set(self._busy)
            try:
                await self.handler.handle(job)
            except StorageError as exc:
                if not self._survive_storage_errors:
                    self._fail(exc)
                else:
                    await self._storage_away(job, exc)
            except FatalError as exc:
                self._fail(exc)
            except Exception as exc:  # noqa: BLE001 - not hidden: it ends the run and is re-raised
                # A bug must not silently cost a worker (and stall the run): stop
                # everything, leave the job for the next run, and surface the error.
                log.exception(
                    "unexpected error while archiving %s",
                    job.call.sip_call_id,
                    extra={"sip_call_id": job.call.sip_call_id},
                )
                self._fail(exc)
            finally:
                self._busy -= 1
                if self._busy == 0:
                    self._idle.set()
                self.stats.in_flight = self._busy
                self.metrics.in_flight.set(self._busy)
                self._queue.task_done()
                self._wake.set()

    async def _storage_away(self, job: Job, exc: StorageError) -> None:
        """The daemon: the storage failed this transfer past the client's own retries.
        The recording is not at fault: put it back without counting an attempt, and
        claim nothing new for a while (/readyz shows the storage as unreached)."""
        pause = self.config.service.probe_interval
        self._paused_until = time.monotonic() + pause
        log.warning("storage unavailable, pausing transfers for %.0fs: %s", pause, exc)
        await self.state.outcomes.postpone(
            job.id,
            f"storage unavailable: {exc}",
            self.clock() + timedelta(seconds=pause),
            owner=self.leases.owner,
        )

    # -- manifest and shutdown ----------------------------------------------------------

    def _manifest_written(self, lines: int) -> None:
        self.stats.manifest_lines += lines

    async def _flush_forever(self) -> None:
        if not self._flusher_here:
            return  # the daemon: the leader's tasks flush
        try:
            await self.flusher.run(self.stop_event)
        except Exception as exc:  # noqa: BLE001 - not hidden: it ends the run and is re-raised
            log.exception("unexpected error while writing the manifest")
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self.stop()

    async def _shutdown(
        self,
        workers: list[asyncio.Task[None]],
        producer_task: asyncio.Task[None],
        flusher: asyncio.Task[None],
        *,
        hard: bool = False,
    ) -> None:
        self.stop_event.set()
        producer_task.cancel()
        # Jobs queued but not started go back to the store (they are released below).
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        cancelled = False
        if not hard:
            try:
                await wait_set(self._idle, self.config.run.grace)
            except asyncio.CancelledError:
                # A second signal during the grace period: stop at once, but still
                # cancel and await the workers before anything they use is closed.
                cancelled = hard = True
        if self._busy:
            when = "stopped at once" if hard else "the grace period ran out"
            log.warning(
                "%s: %d transfer(s) interrupted; they will be retried on the next run",
                when,
                self._busy,
            )
        for task in workers:
            task.cancel()
        if hard:
            flusher.cancel()
        await asyncio.gather(*workers, producer_task, flusher, return_exceptions=True)
        # Whatever was claimed but not finished is queued again (this run's jobs only).
        await self.state.leases.release_transferring(self.leases.owner)
        if hard:
            # Stopping at once: one try, no waiting for another process's flush.
            await self.flusher.flush()
        else:
            await self.flusher.flush_last()
        if cancelled:
            raise asyncio.CancelledError
