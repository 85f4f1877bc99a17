"""The recording retry policy: a pure object, tested without I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from archiver.settings import RetrySettings


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a recording again, and when to give up.

    Transient failures (5xx, timeouts, resets, truncated or non-audio bodies)
    back off exponentially from ``initial`` to ``maximum`` and give up after
    ``max_attempts``. A recording that is not ready yet (404 soon after the call)
    is retried with its own, slower backoff until ``ready_deadline`` after the
    call ended, then fails with "recording never became available" - but never
    before ``not_ready_min_attempts`` attempts, whatever the call's age: a 404
    can be a lagging replica, a CDN or a moved file. Past the deadline those
    attempts back off like transient failures (the recording is not being
    produced any more; it is being looked for).
    """

    # ARCHIVER_RETRY__*, as the settings hold them (every default lives there).
    settings: RetrySettings = field(default_factory=RetrySettings)
    # Each delay is drawn within +/- this fraction, so failures do not retry in step.
    jitter: float = 0.2

    @property
    def ready_deadline(self) -> float:
        """Seconds after a call ended until its recording is no longer waited for."""
        return self.settings.ready_deadline

    def _delay(self, attempts: int, initial: float, maximum: float, rng: random.Random) -> float:
        base = min(initial * 2.0 ** max(attempts, 0), maximum)
        return base * (1 + self.jitter * (2 * rng.random() - 1))

    def after_transient(
        self, attempts: int, now: datetime, rng: random.Random | None = None
    ) -> datetime | None:
        """Next try after the ``attempts``-th failure, or None to give up."""
        r = self.settings
        if attempts >= r.max_attempts:
            return None
        delay = self._delay(attempts - 1, r.initial, r.maximum, rng or random.Random())  # noqa: S311
        return now + timedelta(seconds=delay)

    def after_not_ready(
        self, attempts: int, call_ended: datetime, now: datetime, rng: random.Random | None = None
    ) -> datetime | None:
        """Next try for a recording that is not there yet; None once past the deadline
        with at least ``not_ready_min_attempts`` made."""
        r = self.settings
        deadline = call_ended + timedelta(seconds=r.ready_deadline)
        rng = rng or random.Random()  # noqa: S311
        if now >= deadline:
            if attempts >= r.not_ready_min_attempts:
                return None
            delay = self._delay(attempts - 1, r.initial, r.maximum, rng)
            return now + timedelta(seconds=delay)
        delay = self._delay(attempts - 1, r.not_ready_initial, r.not_ready_maximum, rng)
        return min(now + timedelta(seconds=delay), deadline)

    def last_not_ready_attempt_next(
        self, attempts: int, call_ended: datetime, now: datetime
    ) -> bool:
        """After ``attempts`` not-ready answers, whether the next try is the last one
        (the moment to ask the provider for a fresh URL by id)."""
        deadline = call_ended + timedelta(seconds=self.settings.ready_deadline)
        return attempts + 1 >= self.settings.not_ready_min_attempts and now >= deadline


def claimable(queued: int, room: int) -> int:
    """How many due jobs the dispatcher claims into a queue of ``room`` places holding
    ``queued`` (pure): its free places once they are at least a quarter of it, or
    whenever it ran dry. The workers keep queued work meanwhile, and a backfill pays
    one claim transaction per few recordings instead of one per recording."""
    free = room - queued
    return free if queued == 0 or free >= max(1, room // 4) else 0
