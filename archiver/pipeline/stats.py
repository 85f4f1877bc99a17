"""What a pipeline run is told (its config) and what it tells (its stats)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from archiver.failures import FailureKind, ListingLimit
from archiver.settings import (
    PrivacySettings,
    RunSettings,
    ServiceSettings,
    Settings,
    SourceSettings,
    StorageSettings,
)


@dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline runs: the settings of what it drives, as they are (no copies,
    so every default lives in :mod:`archiver.settings` only)."""

    # Workers, leases, the daemon's polls and sweep, the manifest's batches.
    run: RunSettings = field(default_factory=RunSettings)
    # The provider's time zone (manifest dates) and page size (the polls' counts).
    source: SourceSettings = field(default_factory=SourceSettings)
    # When an incomplete upload or temporary file is abandoned.
    storage: StorageSettings = field(default_factory=StorageSettings)
    # After the storage fails a transfer, the daemon claims nothing new until about
    # the next readiness probe (``probe_interval``).
    service: ServiceSettings = field(default_factory=ServiceSettings)
    # Where the keys of sealed phone numbers are (unset: new lines keep numbers plain).
    privacy: PrivacySettings = field(default_factory=PrivacySettings)

    @classmethod
    def of(cls, settings: Settings) -> PipelineConfig:
        """The pipeline's part of ``settings``."""
        return cls(settings, settings.source, settings.storage, settings.service, settings.privacy)


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
    # Found in the archive (a line by any writer) and adopted into the state, not archived again.
    adopted: int = 0
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
