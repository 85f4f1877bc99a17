"""``verify --sample``: which recordings a sampled verify checks, and what that proves.

A sampled verify still walks every manifest object and the whole chain (a
missing, altered or planted manifest object is found as in a full verify);
only the recordings' objects are a sample. Which ones is decided by a keyed
hash of each object key, so the sample is uniform, independent of the order
the manifests are read in, and the same again for the same ``--seed``:

- a share (``--sample 2%``): every line whose hash falls under the share;
- a count (``--sample 500``): the ``count`` lines of the smallest hashes (a
  bounded heap: memory grows with the count, never with the archive).

:func:`upper_bound` states what a clean sample proves: the largest share of
bad recordings that would still leave ``bad`` of ``n`` drawn bad with
probability 5% (Clopper-Pearson; the binomial is conservative for draws
without replacement), e.g. 0 bad of 300 sampled: under 1.0% at 95%.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from archiver.errors import UsageError
from archiver.manifest.entry import ManifestEntry
from archiver.retrieval.problems import Problem, ProblemKind

MAX_COUNT = 1_000_000
"""The largest ``--sample N`` (the chosen lines are held until the manifests are read)."""

# The problems of a recording's own object (not of the chain, the index or a second line).
OBJECT_KINDS = frozenset(
    {
        ProblemKind.MISSING,
        ProblemKind.ALTERED,
        ProblemKind.CORRUPT,
        ProblemKind.UNPROVEN,
        ProblemKind.SYMLINK,
    }
)

_SPEC = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<share>%?)")


@dataclass
class Sample:
    """The sample of one verify run; see the module docstring."""

    seed: str
    count: int | None = None  # a count; else ``share`` (0 < share <= 1)
    share: float = 1.0
    spec: str = ""
    _heap: list[tuple[int, str, int]] = field(default_factory=list)
    _lines: dict[int, ManifestEntry] = field(default_factory=dict)
    _chosen: set[str] = field(default_factory=set)
    _serial: int = 0

    @classmethod
    def parse(cls, spec: str, seed: str | None = None) -> Sample:
        """``N`` (a count, 1..MAX_COUNT) or ``P%`` (a share, over 0 and up to 100);
        UsageError otherwise. A new random seed unless one is given."""
        match = _SPEC.fullmatch(spec.strip())
        if match is None:
            raise UsageError(f"--sample {spec!r}: a count (500) or a share (2%)")
        seed = secrets.token_hex(8) if seed is None else seed
        if seed == "" or len(seed) > 200 or not seed.isprintable():
            raise UsageError("--seed: 1 to 200 printable characters")
        number = float(match["number"])
        if match["share"]:
            if not 0 < number <= 100:
                raise UsageError(f"--sample {spec!r}: a share over 0% and up to 100%")
            return cls(seed=seed, share=number / 100, spec=spec.strip())
        if number != int(number) or not 1 <= number <= MAX_COUNT:
            raise UsageError(f"--sample {spec!r}: a count from 1 to {MAX_COUNT:,}")
        return cls(seed=seed, count=int(number), spec=spec.strip())

    def _rank(self, key: str) -> int:
        digest = hashlib.sha256(f"{self.seed}\n{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def offer(self, call: ManifestEntry) -> list[ManifestEntry]:
        """The lines to check now for ``call`` (a share: it or nothing; a count: nothing
        until :meth:`rest`)."""
        rank = self._rank(call.object_key)
        if self.count is None:
            return [call] if rank < self.share * 2**64 else []
        self._serial += 1
        entry = (-rank, call.object_key, self._serial)
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:  # a smaller rank than the largest kept
            dropped = heapq.heapreplace(self._heap, entry)
            del self._lines[dropped[2]]
        else:
            return []
        self._lines[self._serial] = call
        return []

    def rest(self) -> list[ManifestEntry]:
        """A count's chosen lines, once every manifest was read (a share's: none left)."""
        chosen = [self._lines[serial] for _, _, serial in self._heap]
        self._chosen = {c.object_key for c in chosen}
        return chosen

    def chosen_key(self, object_key: str) -> bool:
        """Whether the object ``object_key`` is in the sample (a count's: after :meth:`rest`)."""
        if self.count is None:
            return self._rank(object_key) < self.share * 2**64
        return object_key in self._chosen

    def bad(self, problems: Iterable[Problem]) -> int:
        """The sampled objects found bad among ``problems``."""
        return len(
            {
                p.call.object_key
                for p in problems
                if p.call is not None
                and p.kind in OBJECT_KINDS
                and self.chosen_key(p.call.object_key)
            }
        )

    def line(self, checked: int, entries: int, bad: int) -> str:
        """What the sample proves, in one line (see :func:`upper_bound`)."""
        head = (
            f"sample: {checked} of {entries} recording(s) checked "
            f"(--sample {self.spec} --seed {self.seed}), {bad} bad"
        )
        if checked == 0:
            return f"{head}; nothing sampled, nothing proven about the recordings"
        if checked >= entries:
            return f"{head}; every recording in the range was checked"
        bound = upper_bound(checked, bad)
        at_most = min(entries, math.ceil(bound * entries))
        return (
            f"{head}; at 95% confidence at most {_percent(bound)} of the {entries} "
            f"recordings are bad (at most {at_most}); the chain and every manifest object "
            "were checked in full; a full verify proves each recording"
        )


def upper_bound(n: int, bad: int, confidence: float = 0.95) -> float:
    """The one-sided Clopper-Pearson upper bound of the bad share, given ``bad`` of ``n``.

    The share p at which drawing at most ``bad`` bad of ``n`` has probability
    1 - confidence; with none bad, 1 - (1 - confidence) ** (1 / n) (about 3/n).
    """
    if n <= 0:
        return 1.0
    if bad >= n:
        return 1.0
    alpha = 1 - confidence
    if bad == 0:
        return 1 - float(alpha ** (1 / n))
    low, high = bad / n, 1.0
    for _ in range(100):  # bisection: the binomial CDF falls as p grows
        mid = (low + high) / 2
        if _binomial_cdf(bad, n, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in logs (n may be large)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return math.exp(top) * sum(math.exp(t - top) for t in terms)


def _percent(share: float) -> str:
    value = share * 100
    return f"{value:.2g}%" if value < 1 else f"{value:.1f}%"


class SampledQueue(asyncio.Queue[ManifestEntry | None]):
    """verify's queue of lines to check, through a sample (every line without one).

    ``put(line)`` enqueues the lines the sample takes for it; the first
    ``put(None)`` (the end of the lines) enqueues a count sample's chosen lines
    before the end marker, so the checkers see every chosen line.
    """

    def __init__(self, sample: Sample | None, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self._sample = sample
        self._ended = False

    async def put(self, item: ManifestEntry | None) -> None:
        """Enqueue ``item`` as the sample says; see the class docstring."""
        if self._sample is None:
            return await super().put(item)
        if item is not None:
            chosen = self._sample.offer(item)
        else:
            chosen = [] if self._ended else self._sample.rest()
            self._ended = True
        for line in chosen:
            await super().put(line)
        if item is None:
            await super().put(None)
