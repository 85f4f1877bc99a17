"""Riding out a state database that goes away for a while.

A PostgreSQL restart or failover, a network blip, or an SQLite file on a full
or read-only disk makes state operations fail for seconds to minutes. Each
operation is tried again (reconnecting, with backoff) for as long as the
database has been away for less than ``ARCHIVER_STATE__OUTAGE``, counted from
the first failure of the outage (not per operation: operations started late in
an outage do not extend it). Each attempt stays within the backend's own
deadline (``ARCHIVER_STATE__TIMEOUT``). Past the bound, the operation, and every
one failing after it, raises :class:`~archiver.errors.StateUnavailableError`:
one line (``run`` exits 1 with it). An operation that succeeds ends the outage.

Only operations safe to repeat are repeated: reads, and writes guarded so that
a second run changes nothing the first did (an owner, a state, ``ON CONFLICT``).
A write whose commit may have happened before the connection broke (its
outcome unknown) is resolved by re-reading what it would have written, before
anything is run again (see ``resolve`` in :meth:`Availability.ride`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from archiver.errors import StateUnavailableError
from archiver.settings import ENV_PREFIX

log = logging.getLogger("archiver.state")

T = TypeVar("T")

# Backoff between attempts: from 0.2 s, doubling, jittered, at most 5 s, so a
# database back after a restart is found again within seconds.
_WAIT = wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.5)


class Availability:
    """Whether the state database answers; since when it has not, and why.

    Shared by every operation on one database: /readyz and the
    ``archiver_state_available`` gauge read it, the operations write it.
    """

    def __init__(
        self, where: str, bound: float, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        """``where`` names the database in messages (never a password); ``bound`` is
        how many seconds an outage is ridden out."""
        self.where = where
        self.bound = bound
        self._monotonic = monotonic
        self._down_since: float | None = None
        self.reason = ""

    @property
    def available(self) -> bool:
        """True unless the last operation failed for want of the database."""
        return self._down_since is None

    def down_for(self) -> float:
        """Seconds since the outage began (0 when the database answers)."""
        if self._down_since is None:
            return 0.0
        return self._monotonic() - self._down_since

    def failed(self, reason: str) -> None:
        """An operation failed because the database is away (``reason``: one line)."""
        self.reason = reason
        if self._down_since is None:
            self._down_since = self._monotonic()
            log.warning(
                "state: %s unreachable: %s; waiting for it up to %g s (%sSTATE__OUTAGE)",
                self.where,
                reason,
                self.bound,
                ENV_PREFIX,
            )

    def answered(self) -> None:
        """An operation succeeded: the outage, if any, is over."""
        if self._down_since is not None:
            log.warning("state: %s answers again after %.1f s", self.where, self.down_for())
            self._down_since = None
            self.reason = ""

    def _past_bound(self, _: RetryCallState | None = None) -> bool:
        return self.down_for() >= self.bound

    def _give_up(self) -> StateUnavailableError:
        return StateUnavailableError(
            f"state: {self.where} unreachable for more than {self.bound:g} s"
            f" ({ENV_PREFIX}STATE__OUTAGE): {self.reason}"
        )

    async def ride(
        self,
        op: Callable[[], Awaitable[T]],
        *,
        transient: Callable[[BaseException], str | None],
        resolve: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """``await op()``, again while it fails for want of the database (``transient``
        gives the reason as one line for such an error, None for any other, which
        is raised at once) and the outage is within its bound.

        ``resolve``, for a write whose outcome a broken connection leaves unknown:
        called before the next attempt; a value other than None is what the first
        attempt did (it committed), and becomes the result; None runs ``op`` again.
        """
        # The common case, the database answering, costs one await: the retry
        # machinery (an AsyncRetrying per operation, a few per recording) is built
        # only once an attempt failed for want of the database. That first failure
        # is handed to it as its first attempt's, so the waits, the bound, the
        # resolve of an unknown outcome and the messages are as if it had run it.
        first: Exception | None = None
        if self._down_since is None:
            try:
                return await op()
            except Exception as exc:
                if transient(exc) is None:
                    raise
                first = exc
        unknown = first is not None

        async def attempt() -> T:
            nonlocal unknown, first
            if first is not None:
                failed, first = first, None
                raise failed
            if unknown and resolve is not None:
                found = await resolve()
                if found is not None:
                    return found
            unknown = True
            result = await op()
            unknown = False
            return result

        def note(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            if exc is not None:
                self.failed(transient(exc) or type(exc).__name__)

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: transient(exc) is not None),
            wait=_WAIT,
            stop=self._past_bound,
            before_sleep=note,
            reraise=True,
        )
        try:
            result: T = await retrying(attempt)
        except Exception as exc:
            reason = transient(exc)
            if reason is None:
                raise
            self.failed(reason)
            raise self._give_up() from None
        self.answered()
        return result
