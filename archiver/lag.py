"""The run's lag warning: past ``ARCHIVER_LAG_WARNING``, one line (at most once a
minute) with the lag and what the run is waiting for.

The lag (the age of the oldest recording not yet archived) grows for one of a
few reasons: the storage, the state or the provider is away, or nothing is
failing and the work is simply not done yet (transfers in flight, recordings
the provider has not made available). The line names the first that holds,
so the operator knows where to look without reading the whole log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("archiver.service")

# Seconds between two warnings while the lag stays past the threshold.
WARN_EVERY = 60.0


@dataclass(frozen=True)
class Waiting:
    """What the run's progress depends on, as the service last saw it."""

    storage_error: str | None = None
    """The storage probe's last failure (None: it answered)."""
    state_error: str | None = None
    """The state's last failure (None: it answered)."""
    source_silent_for: float | None = None
    """Seconds since a listing of the source last completed, when too long (else None)."""
    in_flight: int = 0
    oldest_transfer: float = 0.0
    near_deadline: int = 0
    queued: int = 0
    not_ready: int = 0

    @property
    def cause(self) -> str:
        """The first cause that holds, as one word: storage, state, provider,
        deadline, busy, not_ready or retries."""
        if self.storage_error is not None:
            return "storage"
        if self.state_error is not None:
            return "state"
        if self.source_silent_for is not None:
            return "provider"
        if self.near_deadline:
            return "deadline"
        if self.in_flight or self.queued:
            return "busy"
        if self.not_ready:
            return "not_ready"
        return "retries"

    def reason(self) -> str:
        """What the run is waiting for, in a few words (the first cause that holds)."""
        return {
            "storage": f"waiting for the storage (its probe fails: {self.storage_error})",
            "state": f"waiting for the state database ({self.state_error})",
            "provider": "waiting for the provider (no listing completed for "
            f"{self.source_silent_for or 0:.0f}s)",
            "deadline": f"waiting for {self.near_deadline} transfer(s) near their deadline "
            f"(oldest in flight {self.oldest_transfer:.0f}s): slow recording host or storage",
            "busy": f"nothing failing: {self.in_flight} transfer(s) in flight, {self.queued} "
            "queued; the run is slower than the calls arrive (see ARCHIVER_CONCURRENCY)",
            "not_ready": f"waiting for the provider to make {self.not_ready} recording(s) "
            "available (retried as they become ready)",
            "retries": "nothing failing and nothing queued: retries are not due yet",
        }[self.cause]


class LagWatch:
    """Warns when the lag passes ``threshold`` seconds: at once when the cause changes,
    else at most once a minute; and says once when it is back under."""

    def __init__(self, threshold: float, *, monotonic: Callable[[], float]) -> None:
        self.threshold = threshold
        self._monotonic = monotonic
        self._last_warning: float | None = None
        self._over = False
        self._cause: str | None = None

    def check(self, lag: float, waiting: Callable[[], Waiting]) -> str | None:
        """Log (and return) the warning when one is due; ``waiting`` is asked only past
        the threshold."""
        if lag <= self.threshold:
            if self._over:
                log.info("lag back under ARCHIVER_LAG_WARNING (%.0fs): %.0fs", self.threshold, lag)
            self._over = False
            self._last_warning = self._cause = None
            return None
        now = self._monotonic()
        self._over = True
        seen = waiting()
        recent = self._last_warning is not None and now - self._last_warning < WARN_EVERY
        if recent and seen.cause == self._cause:
            return None
        self._last_warning, self._cause = now, seen.cause
        line = (
            f"lag {lag:.0f}s is past ARCHIVER_LAG_WARNING ({self.threshold:.0f}s): {seen.reason()}"
        )
        log.warning("%s", line)
        return line
