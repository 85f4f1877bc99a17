"""The state's parts, one protocol per concern: each user asks only for what it uses.

The job handler records outcomes (:class:`Outcomes`); the dispatcher takes work
from the queue (:class:`JobQueue`); the lease keeper renews and releases job
leases (:class:`JobLeases`); whoever must run in one place at a time takes a
role (:class:`Roles`); the producers and the poller mark what they listed
(:class:`Progress`); the sweep asks again about late recordings
(:class:`Rechecks`); the manifest writer cuts and confirms batches
(:class:`Batches`); probes, summaries and ``status`` read (:class:`Reports`).

Each backend implements every part as a small object over its connection
(``archiver/state/sqlite/``, ``archiver/state/postgres/``); :class:`State` is
the opened database that holds them as attributes and closes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord
from archiver.state.base import (
    DEFAULT_LEASE,
    AddResult,
    Failure,
    Job,
    JobState,
    ManifestBatch,
    WaitingLine,
)
from archiver.state.outage import Availability


class JobQueue(Protocol):
    """Calls in, due jobs out: the backlog of recordings to archive."""

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

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending/waiting_ready job is due, or None if there is none."""

    async def retry_failed(self) -> int:
        """Re-queue every failed job (pending, due now, attempts reset); returns how many."""

    async def retry_failed_between(self, provider: str, since: datetime, until: datetime) -> int:
        """Re-queue the failed jobs of ``provider``'s calls started in [since, until)
        (pending, due now, attempts reset): a backfill re-run of its range."""


class Outcomes(Protocol):
    """What came of a claimed job.

    A job's outcome is written by the process that holds its lease. Each call
    takes that ``owner`` (the one given to ``claim_due``): once the lease is
    lost (the process stalled past it, ``release_expired`` put the job back,
    and perhaps another process took it), the call changes nothing and returns
    False, so a late process cannot finish, fail or re-queue a job another now
    holds. ``owner=None`` skips the check (tools acting on a job outside any
    claim). Each also returns False for an archived job, which nothing
    changes; KeyError for an id no job has.
    """

    async def mark_archived(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """The recording is stored and verified; keep its manifest line for batching
        in partition ``manifest_date`` (YYYY-MM-DD). Idempotent."""

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
        the reason and when to try next."""

    async def postpone(
        self, job_id: int, reason: str, next_attempt_at: datetime, *, owner: str | None = None
    ) -> bool:
        """Back to pending until ``next_attempt_at`` without counting an attempt: the
        recording was not at fault (e.g. the storage was away)."""

    async def mark_failed(
        self, job_id: int, reason: str, *, kind: FailureKind, owner: str | None = None
    ) -> bool:
        """Give up on this recording: what went wrong as a value (``kind``: metrics,
        summaries) and as words a person can act on (``reason``). Counts the attempt."""

    async def update_recording_url(self, job_id: int, url: str) -> None:
        """A fresh URL (e.g. a signed link refreshed through the source)."""

    async def adopt(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """The archive already holds ``entry``, a call line of this job's call written by
        another writer (a lost or new state): the job is archived with that line and is
        never cut into a batch of this state. No attempt is counted. Idempotent."""


class Rechecks(Protocol):
    """Calls whose recording may still come, asked about again by the sweep."""

    async def recheck_candidates(self, since: datetime, limit: int) -> list[Job]:
        """Calls whose recording may still come: no_recording, or failed because the
        recording never became available or the CDR had no URL, with a call that
        started at or after ``since``; the least recently looked at first."""

    async def recheck(self, job_id: int, url: str | None, now: datetime) -> bool:
        """After asking the source again about a recheck candidate: a URL other than
        the stored one makes the job pending (due now, attempts reset) and returns
        True; otherwise only its turn moves to the back of the line (False)."""


class JobLeases(Protocol):
    """Who holds the jobs in flight, and until when (see :mod:`archiver.state.base`)."""

    async def renew_leases(self, owner: str, now: datetime, lease: timedelta) -> int:
        """The heartbeat: every job ``owner`` holds (transferring) is held until
        ``now + lease``. Returns how many."""

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


class Roles(Protocol):
    """Named leases: the one process that polls, writes the chain, lists a window."""

    async def hold_role(self, role: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """Take or renew the named lease ``role`` for ``owner`` until ``now + lease``
        when it is free, expired (its end at or before ``now``) or already
        ``owner``'s; True when ``owner`` holds it afterwards. Atomic: of processes
        racing for a free role, exactly one wins."""

    async def release_role(self, role: str, owner: str) -> None:
        """Give ``role`` up, only if ``owner`` holds it (another holder is left alone)."""

    async def role_holder(self, role: str, now: datetime) -> str | None:
        """Who holds ``role`` under a lease still running at ``now``, or None."""


class Progress(Protocol):
    """How far the listing got: completed windows (backfill) and checkpoints (run)."""

    async def is_window_done(self, provider: str, start: datetime, end: datetime) -> bool:
        """Whether the listing of [start, end) completed before."""

    async def mark_window_done(self, provider: str, start: datetime, end: datetime) -> None:
        """The listing of [start, end) completed (every CDR in it is in the store)."""

    async def get_checkpoint(self, provider: str) -> datetime | None:
        """The daemon's checkpoint: every CDR started before it has been listed."""

    async def set_checkpoint(self, provider: str, value: datetime) -> None:
        """Move the checkpoint; it only moves forward (an earlier value is ignored)."""


class WriterIdentity(Protocol):
    """The state's own manifest writer id (also what binds a storage to this state)."""

    async def writer_id(self) -> str:
        """This store's manifest writer id: drawn once, the same on every run."""


class Batches(WriterIdentity, Protocol):
    """Manifest batches: name and content fixed in the state before the object is written."""

    async def create_manifest_batches(self, writer: str, max_lines: int) -> int:
        """Group archived jobs not yet in a batch into batches (one per manifest date,
        at most ``max_lines`` each), fixing each batch's key, content and chain link
        (after ``writer``'s previous link) in one transaction. Returns the number of
        batches created."""

    async def unwritten_manifest_batches(self) -> list[ManifestBatch]:
        """Batches created but not yet confirmed written, oldest first."""

    async def mark_manifest_written(self, batch_id: int) -> None:
        """The batch's object is in the storage (its content may be dropped now).
        Idempotent; KeyError for an id no batch has."""

    async def waiting_lines(self) -> list[WaitingLine]:
        """The archived calls whose lines are not in a batch yet, in job order."""

    async def set_aside(self, job_id: int, entry: ManifestEntry, manifest_date: str) -> bool:
        """A waiting line whose call the archive now holds (``entry``, written by another
        writer since): kept out of every batch, the archive's line recorded instead.
        False when the line is no longer waiting (already cut into a batch)."""


class Reports(Protocol):
    """Reads for people and probes: counts, lag, failures, one job."""

    async def counts(self) -> dict[JobState, int]:
        """Number of jobs in each state (every state present, zero included)."""

    async def oldest_unarchived(self) -> datetime | None:
        """When the longest-waiting recording not yet archived was first listed
        (pending, waiting_ready or transferring), or None if there is none."""

    async def failures(self, limit: int | None = None) -> list[Failure]:
        """Failed jobs, most recent first."""

    async def find_job(self, ident: str) -> Job | None:
        """A job by cdr_id or sip_call_id (any provider), or None. Surrounding
        whitespace is ignored; of several matches, the call that started last."""

    async def archived_line(self, provider: str, cdr_id: str) -> str | None:
        """The manifest line (its JSON text) the state keeps of an archived call, or
        None when the call is not archived here (``reconcile --fix`` writes it again
        when the manifest lost it)."""


class State(Protocol):
    """An open state database: its parts, and closing it."""

    @property
    def jobs(self) -> JobQueue:
        """The backlog: add calls, claim due jobs, re-queue failed ones."""

    @property
    def outcomes(self) -> Outcomes:
        """What came of claimed jobs."""

    @property
    def rechecks(self) -> Rechecks:
        """Late recordings asked about again."""

    @property
    def leases(self) -> JobLeases:
        """Job leases: heartbeat and release."""

    @property
    def roles(self) -> Roles:
        """Named leases."""

    @property
    def progress(self) -> Progress:
        """Listed windows and checkpoints."""

    @property
    def batches(self) -> Batches:
        """Manifest batches and the writer id."""

    @property
    def reports(self) -> Reports:
        """Reads for people and probes."""

    @property
    def availability(self) -> Availability:
        """Whether the database answers now (readiness, ``archiver_state_available``)."""

    async def close(self) -> None:
        """Close the database (safe to call twice)."""
