"""Failed sign-ins slow the guesser down, never lock the real user out (OWASP ASVS V2.2).

Three counters of recent failures (a window of ``LOGIN_WINDOW``):

- per (user, address): past ``attempts`` failures, that pair must wait an
  exponentially growing time (15 s, 30 s, 60 s ... up to ``PAIR_CAP``) after its last
  failure before the next try is even looked at (429 with ``Retry-After``): the
  guesser's own address pays;
- per address, whatever the user: the same past four times ``attempts`` (one
  address spraying many names); behind a trusted proxy the address is the
  client's own, from the proxy's header, so one guesser does not stop everyone
  behind the proxy;
- per user, across addresses: past ``attempts`` failures, every try for that
  user waits a growing delay before its password is checked, capped at
  ``USER_CAP`` seconds, and is then answered. A guesser spread over many
  addresses is slowed; the real user, from an address of their own, still
  signs in after at most that delay.

Memory is bounded: at most ``max_keys`` users, addresses and pairs are
remembered, the least recently failed dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

LOGIN_WINDOW = 15 * 60.0
MAX_KEYS = 10_000
PAIR_BASE, PAIR_CAP = 15.0, 15 * 60.0
USER_BASE, USER_CAP = 1.0, 8.0


@dataclass
class _Failures:
    count: int
    last: float


def _backoff(excess: int, base: float, cap: float) -> float:
    """base, 2 x base, 4 x base ... seconds for the 1st, 2nd, 3rd failure past the free
    ones, capped."""
    if excess <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(excess - 1, 30)))


class SignInThrottle:
    """The three counters above; ``clock`` is time.monotonic unless a test steps its own."""

    def __init__(
        self,
        attempts: int,
        *,
        window: float = LOGIN_WINDOW,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def _recent(self, key: str) -> _Failures | None:
        entry = self._failures.get(key)
        if entry is not None and self.clock() - entry.last > self.window:
            del self._failures[key]
            return None
        return entry

    def refused_for(self, address: str, user: str) -> float:
        """Seconds the (user, address) pair or the address must still wait (0: may try)."""
        now = self.clock()
        wait = 0.0
        for key, free in (
            (f"pair:{user.casefold()}\0{address}", self.attempts),
            (f"addr:{address}", self.attempts * 4),
        ):
            entry = self._recent(key)
            if entry is not None:
                backoff = _backoff(entry.count - free + 1, PAIR_BASE, PAIR_CAP)
                wait = max(wait, entry.last + backoff - now)
        return max(0.0, wait)

    def delay_for(self, user: str) -> float:
        """Seconds a try for ``user`` waits before its password is checked."""
        entry = self._recent(f"user:{user.casefold()}")
        if entry is None:
            return 0.0
        return _backoff(entry.count - self.attempts + 1, USER_BASE, USER_CAP)

    def failed(self, address: str, user: str) -> None:
        """Count one failed sign-in."""
        now = self.clock()
        for key in (
            f"pair:{user.casefold()}\0{address}",
            f"addr:{address}",
            f"user:{user.casefold()}",
        ):
            entry = self._recent(key)
            if entry is None:
                self._failures[key] = _Failures(1, now)
            else:
                entry.count += 1
                entry.last = now
                self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, address: str, user: str) -> None:
        """A right password from this pair: its own count starts again."""
        self._failures.pop(f"pair:{user.casefold()}\0{address}", None)

    def __len__(self) -> int:
        """How many users, addresses and pairs are remembered."""
        return len(self._failures)
