"""The pipeline: a producer lists CDRs into the state store; a dispatcher feeds due
jobs through a bounded queue to a fixed number of transfer workers; a flusher
writes the manifest in batches.

The backlog lives in the state store, not in memory: the queue holds at most
``concurrency`` jobs. The backfill and the daemon are this one pipeline with a
different stop rule (``stop_when_idle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from archiver.errors import ArchiverError, FatalError, StorageError
from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.layout import manifest_date
from archiver.manifest.writer import HeadHook
from archiver.metrics import Metrics
from archiver.models import CallRecord
from archiver.pipeline.flusher import ManifestFlusher
from archiver.pipeline.intake import Concurrently, Health, Producer
from archiver.pipeline.leases import RunLeases
from archiver.pipeline.policy import RetryPolicy
from archiver.pipeline.poller import Poller
from archiver.pipeline.producers import Window, WindowLister
from archiver.pipeline.stats import PipelineConfig, RunStats
from archiver.pipeline.sweep import Sweeper
from archiver.pipeline.transfer import Transferrer, TransferResult, Verdict
from archiver.sources.base import CdrSource, Page
from archiver.state.base import AddResult, Job, JobState, StateStore
from archiver.storage.base import ObjectStore, PutOutcome

log = logging.getLogger("archiver.pipeline")


def utc_now() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


class Pipeline:
    """One run of the archive pipeline."""

    def __init__(
        self,
        source: CdrSource,
        state: StateStore,
        store: ObjectStore,
        transferrer: Transferrer,
        retry: RetryPolicy,
        config: PipelineConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
        on_head: HeadHook | None = None,
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
            state,
            store,
            uuid.uuid4().hex[:12],
            config.lease,
            config.abandoned_after,
            self.clock,
            metrics=self.metrics,
        )
        self._wake = asyncio.Event()
        self.flusher = ManifestFlusher(
            state,
            store,
            interval=config.manifest_interval,
            max_lines=config.manifest_lines,
            written=self._manifest_written,
            # Called after each chain head written: the trusted timestamp, when configured.
            on_head=on_head,
        )
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=config.concurrency)
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # The daemon outlives a storage outage; the backfill stops (a re-run finishes).
        self._survive_storage_errors = False
        self._paused_until = 0.0
        self._fatal: BaseException | None = None
        self._rng = random.Random()  # noqa: S311 - jitter only

    def stop(self) -> None:
        """Ask for a graceful stop: no new work; in-flight transfers get the grace period."""
        self.stop_requested = True
        self.stop_event.set()
        self._wake.set()

    async def backfill(self, windows: Sequence[Window]) -> RunStats:
        """List every window, archive every recording, then stop (the backfill's rule)."""
        self.stats.windows_total = len(windows)
        lister = WindowLister(self.source, self.state, windows, self.stats)
        return await self.run(lister, stop_when_idle=True)

    async def run(self, producer: Producer, *, stop_when_idle: bool) -> RunStats:
        """Start up, run producer, dispatcher, workers and flusher until the stop rule holds."""
        self._survive_storage_errors = not stop_when_idle
        await self.leases.start()
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
            for i in range(self.config.concurrency)
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
            self.state,
            self.config,
            clock=self.clock,
            health=self.health,
            metrics=self.metrics,
            stats=self.stats,
        )
        sweeper = Sweeper(
            self.source,
            self.state,
            self.config,
            clock=self.clock,
            metrics=self.metrics,
            ready_deadline=self.retry.ready_deadline,
        )
        return await self.run(Concurrently(poller, sweeper), stop_when_idle=False)

    async def take(self, page: Page) -> AddResult:
        """The producers' intake: remember a page of CDRs and wake the dispatcher."""
        calls = page.records
        result = await self.state.add_calls(calls, self.clock())
        self.stats.listed += len(calls)
        self.stats.new += result.new
        self.metrics.cdrs_seen.inc(result.new)
        self.stats.updated += result.updated
        self.stats.duplicates += page.duplicates
        self.stats.new_without_recording += sum(1 for c in calls if not c.has_recording)
        for reason in page.skipped:
            self.stats.bad_records += 1
            log.warning("skipped a CDR the provider sent: %s", reason)
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
            free = self._queue.maxsize - self._queue.qsize()
            if time.monotonic() < self._paused_until:
                free = 0
            jobs = (
                await self.state.claim_due(
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
                due = await self.state.next_due_at()
                if due is None:
                    return
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= self.config.max_wait:
                    log.info("stopping: the remaining retries are not due within the wait limit")
                    return
                wait = min(max((due - self.clock()).total_seconds(), 0.05), 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            self._busy += 1
            self._idle.clear()
            self.stats.in_flight = self._busy
            self.metrics.in_flight.set(self._busy)
            try:
                await self._process(job)
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
        pause = self.config.storage_pause
        self._paused_until = time.monotonic() + pause
        log.warning("storage unavailable, pausing transfers for %.0fs: %s", pause, exc)
        await self.state.postpone(
            job.id, f"storage unavailable: {exc}", self.clock() + timedelta(seconds=pause)
        )

    async def _process(self, job: Job) -> None:
        call = job.call
        if not call.recording_url:
            # The state erases a URL once its job ends (a signed link is a
            # credential); a failed job queued again asks the source for a fresh one.
            fresh = await self._refresh(job)
            if fresh is None:
                await self._give_up(job, FailureKind.NO_URL, "no recording URL")
                return
            call = fresh
        started = time.monotonic()
        with self.health.transferring():
            result = await self.transferrer.transfer(call)
        if result.verdict is Verdict.EXPIRED:
            fresh = await self._refresh(job)
            if fresh is not None:
                call = fresh
                with self.health.transferring():
                    result = await self.transferrer.transfer(call)
        if result.verdict is Verdict.ARCHIVED:
            self.metrics.transfer_seconds.observe(time.monotonic() - started)
        await self._record(job, call, result)

    async def _refresh(self, job: Job) -> CallRecord | None:
        """A fresh recording URL through the source (signed links expire)."""
        try:
            fresh = await self.source.lookup(job.call.cdr_id)
        except FatalError:
            raise
        except ArchiverError as exc:
            log.warning(
                "could not refresh the recording URL of %s: %s",
                job.call.sip_call_id,
                exc,
                extra={"sip_call_id": job.call.sip_call_id},
            )
            return None
        if (
            fresh is None
            or not fresh.recording_url
            or fresh.recording_url == job.call.recording_url
        ):
            return None
        await self.state.update_recording_url(job.id, fresh.recording_url)
        self.stats.refreshed += 1
        return replace(job.call, recording_url=fresh.recording_url)

    async def _record(self, job: Job, call: CallRecord, result: TransferResult) -> None:
        now = self.clock()
        attempts = job.attempts + 1
        if result.verdict is Verdict.ARCHIVED and result.stored is not None:
            stored = result.stored
            entry = ManifestEntry.build(
                call,
                object_key=self.store.full_key(stored.key),
                sha256=stored.sha256,
                size=stored.size,
                content_type=stored.content_type,
                archived_at=now,
                proof=stored.written.proof,
            )
            await self.state.mark_archived(job.id, entry, manifest_date(call, self.config.tz))
            self.stats.archived += 1
            self.flusher.line_added()
            self.stats.bytes += stored.size
            self.metrics.archived.inc()
            self.metrics.bytes.inc(stored.size)
            if stored.written.outcome is PutOutcome.ALREADY_PRESENT:
                self.stats.already_present += 1
            log.debug(
                "archived %s -> %s",
                call.sip_call_id,
                entry.object_key,
                extra={"sip_call_id": call.sip_call_id, "object_key": entry.object_key},
            )
            return
        if result.verdict is Verdict.NOT_READY:
            ended = call.ended_at or call.started_at
            due = self.retry.after_not_ready(attempts, ended, now, self._rng)
            if due is not None:
                if self.retry.last_not_ready_attempt_next(attempts, ended, now):
                    # The link itself may be what is gone (moved, re-signed): the
                    # last try goes to the URL the provider gives for this id now.
                    await self._refresh(job)
                self.stats.not_ready += 1
                await self.state.mark_retry(job.id, JobState.WAITING_READY, result.reason, due)
                return
            await self._give_up(
                job,
                FailureKind.NEVER_AVAILABLE,
                f"recording never became available ({result.reason})",
            )
            return
        if result.verdict in (Verdict.RETRY, Verdict.EXPIRED):
            due = self.retry.after_transient(attempts, now, self._rng)
            if due is not None:
                self.stats.retries += 1
                log.info(
                    "will retry %s: %s",
                    call.sip_call_id,
                    result.reason,
                    extra={"sip_call_id": call.sip_call_id},
                )
                await self.state.mark_retry(job.id, JobState.PENDING, result.reason, due)
                return
            await self._give_up(
                job, _kind(result), f"gave up after {attempts} attempts: {result.reason}"
            )
            return
        await self._give_up(job, _kind(result), result.reason)

    async def _give_up(self, job: Job, kind: FailureKind, reason: str) -> None:
        await self.state.mark_failed(job.id, reason, kind=kind)
        self.stats.failed += 1
        self.stats.failure_kinds[kind] += 1
        self.metrics.failed.labels(kind.value).inc()
        log.warning(
            "failed permanently: %s: %s",
            job.call.sip_call_id,
            reason,
            extra={"sip_call_id": job.call.sip_call_id},
        )

    # -- manifest and shutdown ----------------------------------------------------------

    def _manifest_written(self, lines: int) -> None:
        self.stats.manifest_lines += lines

    async def _flush_forever(self) -> None:
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), timeout=self.config.grace)
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
        await self.state.release_transferring(self.leases.owner)
        await self.flusher.flush()
        if cancelled:
            raise asyncio.CancelledError


def _kind(result: TransferResult) -> FailureKind:
    # Every result but an archived one carries its kind; OTHER guards a bug
    # (a result built without one) without losing the failure itself.
    return result.kind or FailureKind.OTHER
