"""What a pipeline run is told (its config) and what it tells (its stats)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from archiver.failures import FailureKind, ListingLimit


@dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline runs."""

    concurrency: int = 16
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Ho_Chi_Minh"))
    manifest_lines: int = 1000
    manifest_interval: float = 10.0
    # Backfill: how long to keep waiting for retries that are not due yet.
    max_wait: float = 600.0
    # Seconds in-flight transfers get to finish after a stop is asked for.
    grace: float = 20.0
    # The daemon: seconds between polls, re-read behind the checkpoint, kept behind now.
    poll_interval: float = 10.0
    lookback: float = 7200.0
    settle: float = 0.0
    window: float = 3600.0
    # The daemon: after the storage fails a transfer, claim nothing new for this long.
    storage_pause: float = 15.0
    # The daemon's polls: counts are remembered per this many seconds of call start
    # time; a changed range of at most ``page_size`` CDRs is listed rather than halved.
    tally_step: float = 60.0
    page_size: int = 100
    # The daemon's sweep: how often, how far back (the longest call declared), and
    # how many recordings it asks the source about again by id each time.
    sweep_interval: float = 600.0
    longest_call: float = 14400.0
    sweep_lookups: int = 100
    # Seconds a claimed job (and this run's storage marker) stays with this
    # process without a heartbeat; the heartbeat beats three times per lease.
    lease: float = 120.0
    # At start, incomplete uploads and temporary files older than this are
    # abandoned (a younger one may be another process's write in progress).
    abandoned_after: float = 21600.0
    # run replicas: seconds the leader role (and the manifest writer's and a backfill
    # window's) stays with a process that stopped renewing it (renewed every third).
    leader_lease: float = 30.0


@dataclass
class RunStats:
    """What a run did; the progress display and the summary read it."""

    started: float = field(default_factory=time.monotonic)
    windows_total: int = 0
    windows_done: int = 0
    windows_skipped: int = 0
    listed: int = 0
    new: int = 0
    new_without_recording: int = 0
    updated: int = 0
    duplicates: int = 0
    bad_records: int = 0
    archived: int = 0
    already_present: int = 0
    bytes: int = 0
    retries: int = 0
    not_ready: int = 0
    refreshed: int = 0
    failed: int = 0
    manifest_lines: int = 0
    in_flight: int = 0
    failure_kinds: Counter[FailureKind] = field(default_factory=Counter)
    # Windows whose listing a bound stopped (left not done), by bound, and why.
    windows_stopped: Counter[ListingLimit] = field(default_factory=Counter)
    listing_errors: list[str] = field(default_factory=list)
    listing_done: bool = False

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started
