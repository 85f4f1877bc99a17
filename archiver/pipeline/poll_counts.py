"""What the daemon's polls remember of the source: the API's count of CDRs per
fixed step of call start time (pure; no I/O).

Providers list by call start time and a CDR appears when its call ends, so a
new CDR can land anywhere in the lookback. Asking for the count of a range
with the smallest page costs one request; when it equals the sum remembered
for that range, nothing in it changed since it was last listed. A count that
differs is halved down to the steps that changed, and only those are listed.

Counts are only ever remembered from a count taken *before* the listing of the
same range (or from the listed CDRs themselves when they add up to it), so a
CDR that arrives in between makes the next count differ: it is listed then. A
leaf never listed counts as zero: any CDR in it makes its count differ, so a
range that has just come into the lookback costs nothing while it is empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Tally:
    """Remembered counts per step ("leaf") of call start time, leaves counted from
    the Unix epoch so that every poll cuts time at the same edges."""

    def __init__(self, step: timedelta) -> None:
        if step <= timedelta(0):
            raise ValueError("the tally's step must be positive")
        self.step = step
        self._counts: dict[int, int] = {}

    def leaf(self, moment: datetime) -> int:
        """The leaf holding ``moment``."""
        return (moment - _EPOCH) // self.step

    def start_of(self, leaf: int) -> datetime:
        """Where ``leaf`` begins."""
        return _EPOCH + leaf * self.step

    def remembered(self, lo: int, hi: int) -> int:
        """The count remembered for leaves [lo, hi) (a leaf never listed: zero)."""
        return sum(self._counts.get(leaf, 0) for leaf in range(lo, hi))

    def remember(self, leaf: int, count: int) -> None:
        """The API counted ``count`` CDRs in ``leaf`` (before it was listed)."""
        self._counts[leaf] = count

    def attribute(self, lo: int, hi: int, starts: Iterable[datetime], count: int) -> bool:
        """Remember each leaf of [lo, hi) from the listed CDRs' start times, if they
        add up to ``count`` (the range's count, taken before the listing).

        When they do not (records the API counts but we could not parse, or a
        CDR that arrived in between), nothing is remembered and False returned:
        the caller counts smaller ranges instead.
        """
        per_leaf = Counter(self.leaf(s) for s in starts)
        if sum(per_leaf.values()) != count or any(not lo <= k < hi for k in per_leaf):
            return False
        for leaf in range(lo, hi):
            self._counts[leaf] = per_leaf.get(leaf, 0)
        return True

    def forget(self, lo: int, hi: int) -> None:
        """Back to zero for [lo, hi) (its count could not be trusted)."""
        for leaf in range(lo, hi):
            self._counts.pop(leaf, None)

    def forget_before(self, lo: int) -> None:
        """Drop the leaves that fell out of the polled range."""
        for leaf in [k for k in self._counts if k < lo]:
            del self._counts[leaf]

    def __len__(self) -> int:
        return len(self._counts)
