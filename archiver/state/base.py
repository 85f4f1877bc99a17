"""The state-store boundary: what the pipeline remembers between runs.

A call is known once per (provider, cdr_id). Each call has one recording job
whose state moves:

    pending ──claim──> transferring ──> archived
       ^                   │   │
       │ (retry due)       │   └──> failed (reason)        ──retry_failed──> pending
       └── waiting_ready <─┘ (404 soon after the call; or transient error with backoff)
    no_recording (the CDR had no URL; a later listing that brings one moves it to pending)

Several processes may share one state (``run`` and ``backfill`` at once, or
replicas): a claimed job is held by its process (``owner``) under a lease that
its heartbeat renews. Another process never takes a job whose lease is running;
one whose lease ran out (its process died) goes back to pending.

Named leases ("roles") say which process does a job that must run in one place
at a time: the poller of ``run`` replicas (``leader``), a backfill window's
listing, the manifest chain's writer. They follow the same rule as job leases.

Manifest batches make the manifest exactly-once: archived jobs are grouped into
a batch whose object name and content are fixed in the store *before* the object
is written, so a restart rewrites the identical object rather than a second line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord

# How long a claimed job stays with its process without a heartbeat.
DEFAULT_LEASE = timedelta(minutes=2)


class JobState(StrEnum):
    """Where one recording stands."""

    PENDING = "pending"
    TRANSFERRING = "transferring"
    ARCHIVED = "archived"
    NO_RECORDING = "no_recording"
    WAITING_READY = "waiting_ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Job:
    """One recording to archive, as claimed from the store."""

    id: int
    call: CallRecord  # rebuilt from the stored record (parsed fields; no raw payload)
    state: JobState
    attempts: int  # transfer attempts made before this claim
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ManifestBatch:
    """A manifest object to write: name and content fixed before the write."""

    id: int
    key: str  # e.g. manifests/date=2021-02-17/000000000042-<runid>.jsonl
    content: bytes  # JSON Lines, each line newline-terminated
    line_count: int
    # The chain link's bytes (archiver.manifest.chain.Link), fixed with the batch;
    # None for a batch cut before the chain existed.
    link: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A recording that failed permanently."""

    provider: str
    cdr_id: str
    sip_call_id: str
    reason: str
    attempts: int
    updated_at: datetime
    kind: FailureKind = FailureKind.OTHER


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``add_calls`` did with a page of CDRs."""

    new: int  # calls never seen before
    updated: int  # known calls whose recording URL appeared or changed (and not yet archived)
    known: int  # calls already known, nothing changed


class StateStore(Protocol):
    """Persistent state: calls and their recording jobs, windows, checkpoints, manifest batches."""

    async def add_calls(self, calls: Sequence[CallRecord], now: datetime) -> AddResult:
        """Insert new calls (one transaction); deduplicate by (provider, cdr_id).

        New call with a recording URL: pending, due now. Without: no_recording.
        Known call not yet archived whose URL changed or appeared: URL updated,
        and a no_recording job becomes pending. Archived/failed jobs are left alone.
        """

    async def claim_due(
        self, now: datetime, limit: int, *, owner: str = "", lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Atomically take up to ``limit`` jobs that are pending or waiting_ready with
        next_attempt_at <= now (oldest first), mark them transferring, held by
        ``owner`` until ``now + lease``, and return them."""

    async def renew_leases(self, owner: str, now: datetime, lease: timedelta) -> int:
        """The heartbeat: every job ``owner`` holds (transferring) is held until
        ``now + lease``. Returns how many."""

    # A job's outcome is written by the process that holds its lease. Each of the four
    # calls below takes that ``owner`` (the one given to ``claim_due``): once the lease
    # is lost (the process stalled past it, ``release_expired`` put the job back, and
    # perhaps another process took it), the call changes nothing and returns False,
    # so a late process cannot finish, fail or re-queue a job another now holds.
    # ``owner=None`` skips the check (tools acting on a job outside any claim). Each
    # also returns False for an archived job, which nothing changes.

    async def mark_archived(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """The recording is stored and verified; keep its manifest line for batching
        in partition ``manifest_date`` (YYYY-MM-DD). See the lease rule above."""

    async def mark_retry(
        self,
        job_id: int,
        state: JobState,
        reason: str,
        next_attempt_at: datetime,
        *,
        owner: str | None = None,
    ) -> bool:
        """Not done yet (``state`` is pending or waiting_ready): count an attempt, persist
        the reason and when to try next. See the lease rule above."""

    async def postpone(
        self, job_id: int, reason: str, next_attempt_at: datetime, *, owner: str | None = None
    ) -> bool:
        """Back to pending until ``next_attempt_at`` without counting an attempt: the
        recording was not at fault (e.g. the storage was away). See the lease rule above."""

    async def mark_failed(
        self, job_id: int, reason: str, *, kind: FailureKind, owner: str | None = None
    ) -> bool:
        """Give up on this recording: what went wrong as a value (``kind``: metrics,
        summaries) and as words a person can act on (``reason``). See the lease rule above."""

    async def update_recording_url(self, job_id: int, url: str) -> None:
        """A fresh URL (e.g. a signed link refreshed through the source)."""

    async def recheck_candidates(self, since: datetime, limit: int) -> list[Job]:
        """Calls whose recording may still come: no_recording, or failed because the
        recording never became available or the CDR had no URL, with a call that
        started at or after ``since``; the least recently looked at first."""

    async def recheck(self, job_id: int, url: str | None, now: datetime) -> bool:
        """After asking the source again about a recheck candidate: a URL other than
        the stored one makes the job pending (due now, attempts reset) and returns
        True; otherwise only its turn moves to the back of the line (False)."""

    async def release_transferring(self, owner: str | None = None) -> int:
        """Jobs ``owner`` holds go back to pending, due now (its stop: what it claimed
        and did not finish). ``None``: every job in flight, whoever holds it; only
        for when no process can be running."""

    async def release_expired(self, now: datetime) -> int:
        """Jobs whose lease ended before ``now`` (their process died, or stopped
        beating) go back to pending, due now. A job another live process holds is
        never touched. Returns how many."""

    async def lease_holders(self, now: datetime) -> list[str]:
        """The owners holding jobs in flight under a lease still running at ``now``."""

    async def hold_role(self, role: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """Take or renew the named lease ``role`` for ``owner`` until ``now + lease``
        when it is free, expired (its end at or before ``now``) or already
        ``owner``'s; True when ``owner`` holds it afterwards. Atomic: of processes
        racing for a free role, exactly one wins."""

    async def release_role(self, role: str, owner: str) -> None:
        """Give ``role`` up, only if ``owner`` holds it (another holder is left alone)."""

    async def role_holder(self, role: str, now: datetime) -> str | None:
        """Who holds ``role`` under a lease still running at ``now``, or None."""

    async def retry_failed_between(self, provider: str, since: datetime, until: datetime) -> int:
        """Re-queue the failed jobs of ``provider``'s calls started in [since, until)
        (pending, due now, attempts reset): a backfill re-run of its range."""

    async def retry_failed(self) -> int:
        """Re-queue every failed job (pending, due now, attempts reset); returns how many."""

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending/waiting_ready job is due, or None if there is none."""

    async def oldest_unarchived(self) -> datetime | None:
        """When the longest-waiting recording not yet archived was first listed
        (pending, waiting_ready or transferring), or None if there is none."""

    async def counts(self) -> dict[JobState, int]:
        """Number of jobs in each state (every state present, zero included)."""

    async def failures(self, limit: int | None = None) -> list[Failure]:
        """Failed jobs, most recent first."""

    async def is_window_done(self, provider: str, start: datetime, end: datetime) -> bool:
        """Whether the listing of [start, end) completed before."""

    async def mark_window_done(self, provider: str, start: datetime, end: datetime) -> None:
        """The listing of [start, end) completed (every CDR in it is in the store)."""

    async def get_checkpoint(self, provider: str) -> datetime | None:
        """The daemon's checkpoint: every CDR started before it has been listed."""

    async def set_checkpoint(self, provider: str, value: datetime) -> None:
        """Move the checkpoint; it only moves forward (an earlier value is ignored)."""

    async def writer_id(self) -> str:
        """This store's manifest writer id: drawn once, the same on every run."""

    async def create_manifest_batches(self, writer: str, max_lines: int) -> int:
        """Group archived jobs not yet in a batch into batches (one per manifest date,
        at most ``max_lines`` each), fixing each batch's key, content and chain link
        (after ``writer``'s previous link) in one transaction. Returns the number of
        batches created."""

    async def unwritten_manifest_batches(self) -> list[ManifestBatch]:
        """Batches created but not yet confirmed written, oldest first."""

    async def mark_manifest_written(self, batch_id: int) -> None:
        """The batch's object is in the storage (its content may be dropped now)."""

    async def find_job(self, ident: str) -> Job | None:
        """A job by cdr_id or sip_call_id (any provider), or None."""

    async def close(self) -> None:
        """Close the database."""
