"""One claimed job, from its transfer to what the state records of it.

A recording is archived (its manifest line kept for the next batch), waits for
its recording to become ready, is retried after a transient failure, or fails
for good with its kind and a reason a person can act on. A signed URL that
expired, or a job queued again without one, gets a fresh URL through the source.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

from archiver.errors import ArchiverError, FatalError
from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord
from archiver.pipeline.adoption import ArchiveGuard
from archiver.pipeline.context import RunContext
from archiver.pipeline.policy import RetryPolicy
from archiver.pipeline.stats import PipelineConfig
from archiver.pipeline.transfer import Transferrer, TransferResult, Verdict
from archiver.privacy.lines import sealer_of
from archiver.state.base import Job, JobState
from archiver.storage.base import PutOutcome
from archiver.storage.layout import manifest_date

log = logging.getLogger("archiver.pipeline")


class JobHandler:
    """Transfers claimed jobs and records their outcome (the workers' body)."""

    def __init__(
        self,
        run: RunContext,
        transferrer: Transferrer,
        retry: RetryPolicy,
        config: PipelineConfig,
        *,
        line_added: Callable[[], None],
        guard: ArchiveGuard | None = None,
    ) -> None:
        self.run = run
        self.transferrer = transferrer
        self.retry = retry
        self.config = config
        self._line_added = line_added
        self._guard = guard
        self._rng = random.Random()  # noqa: S311 - jitter only
        # ARCHIVER_PRIVACY__KEYS: numbers sealed before the line reaches the state or
        # the manifest (checked here, at start-up: a bad key place stops the run).
        self._sealer = sealer_of(config.privacy)

    async def handle(self, job: Job) -> None:
        """Transfer one claimed job and record in the state what came of it."""
        call = job.call
        if await self._adopted(job):
            return
        if not call.recording_url:
            # The state erases a URL once its job ends (a signed link is a
            # credential); a failed job queued again asks the source for a fresh one.
            fresh = await self._refresh(job)
            if fresh is None:
                await self._give_up(job, FailureKind.NO_URL, "no recording URL")
                return
            call = fresh
        started = time.monotonic()
        with self.run.health.transferring():
            result = await self.transferrer.transfer(call)
        if result.verdict is Verdict.EXPIRED:
            fresh = await self._refresh(job)
            if fresh is not None:
                call = fresh
                with self.run.health.transferring():
                    result = await self.transferrer.transfer(call)
        if result.verdict is Verdict.ARCHIVED:
            self.run.metrics.transfer_seconds.observe(time.monotonic() - started)
        await self._record(job, call, result)

    async def _adopted(self, job: Job) -> bool:
        """True when the archive already holds a call line of this call: the job is then
        marked archived with that line (no download, no upload, no second line)."""
        if self._guard is None:
            return False
        found = await self._guard.known(job.call)
        if found is None:
            return False
        day = manifest_date(job.call, self.config.source.tz)
        if await self._guard.adopt(job.id, found, day, owner=self.run.owner):
            self.run.stats.adopted += 1
        else:
            self._lost(job, "archived")
        return True

    async def _refresh(self, job: Job) -> CallRecord | None:
        """A fresh recording URL through the source (signed links expire)."""
        try:
            fresh = await self.run.source.lookup(job.call.cdr_id)
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
        await self.run.outcomes.update_recording_url(job.id, fresh.recording_url)
        self.run.stats.refreshed += 1
        return replace(job.call, recording_url=fresh.recording_url)

    async def _record(self, job: Job, call: CallRecord, result: TransferResult) -> None:
        now = self.run.clock()
        attempts = job.attempts + 1
        if result.verdict is Verdict.ARCHIVED and result.stored is not None:
            stored = result.stored
            entry = ManifestEntry.build(
                call,
                object_key=self.run.store.full_key(stored.key),
                sha256=stored.sha256,
                size=stored.size,
                content_type=stored.content_type,
                archived_at=now,
                proof=stored.written.proof,
            )
            if self._sealer is not None:
                # A few small local files (the key of a number seen first is created).
                entry = await asyncio.to_thread(self._sealer.seal_entry, entry)
            day = manifest_date(call, self.config.source.tz)
            if not await self.run.outcomes.mark_archived(job.id, entry, day, owner=self.run.owner):
                self._lost(job, "archived")
                return
            self.run.stats.archived += 1
            self._line_added()
            self.run.stats.bytes += stored.size
            self.run.metrics.archived.inc()
            self.run.metrics.bytes.inc(stored.size)
            if stored.written.outcome is PutOutcome.ALREADY_PRESENT:
                self.run.stats.already_present += 1
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
                if await self.run.outcomes.mark_retry(
                    job.id, JobState.WAITING_READY, result.reason, due, owner=self.run.owner
                ):
                    self.run.stats.not_ready += 1
                else:
                    self._lost(job, "not ready yet")
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
                if not await self.run.outcomes.mark_retry(
                    job.id, JobState.PENDING, result.reason, due, owner=self.run.owner
                ):
                    self._lost(job, "to be retried")
                    return
                self.run.stats.retries += 1
                log.info(
                    "will retry %s: %s",
                    call.sip_call_id,
                    result.reason,
                    extra={"sip_call_id": call.sip_call_id},
                )
                return
            await self._give_up(
                job, _kind(result), f"gave up after {attempts} attempts: {result.reason}"
            )
            return
        await self._give_up(job, _kind(result), result.reason)

    async def _give_up(self, job: Job, kind: FailureKind, reason: str) -> None:
        if not await self.run.outcomes.mark_failed(job.id, reason, kind=kind, owner=self.run.owner):
            self._lost(job, "failed")
            return
        self.run.stats.failed += 1
        self.run.stats.failure_kinds[kind] += 1
        self.run.metrics.failed.labels(kind.value).inc()
        log.warning(
            "failed permanently: %s: %s",
            job.call.sip_call_id,
            reason,
            extra={"sip_call_id": job.call.sip_call_id},
        )

    def _lost(self, job: Job, outcome: str) -> None:
        """This process stalled past the job's lease: the job went back to the queue
        (perhaps to another process, at work on it now) and its outcome is theirs."""
        log.warning(
            "%s: lease lost while it was transferred (another process has it now); "
            "not recorded as %s here",
            job.call.sip_call_id,
            outcome,
            extra={"sip_call_id": job.call.sip_call_id},
        )


def _kind(result: TransferResult) -> FailureKind:
    # Every result but an archived one carries its kind; OTHER guards a bug
    # (a result built without one) without losing the failure itself.
    return result.kind or FailureKind.OTHER
