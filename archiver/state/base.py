"""What the state remembers, as values: jobs and their states, batches, failures.

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

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from archiver.failures import FailureKind
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
class WaitingLine:
    """An archived call whose manifest line waits for a batch."""

    job_id: int
    provider: str
    cdr_id: str
    manifest_date: str  # YYYY-MM-DD: the partition its batch goes to


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
