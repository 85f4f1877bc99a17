"""What a ``verify`` found: its counters, its problems, and the one-paragraph summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from archiver.retrieval.chain_audit import ChainAudit
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.sampling import Sample

# UNPROVEN problems listed at most: past them, counted. ``--no-rehash`` on a storage without
# checksums (a local folder) makes every recording UNPROVEN; each kept with its manifest
# line is about 4 KB (5 million calls: 20 GB).
LIST_UNPROVEN = 10_000


@dataclass
class VerifyReport:
    """What a verification found; ``problems`` empty means every object was proven intact."""

    manifests: int = 0
    manifests_read: int = 0
    entries: int = 0  # manifest lines in the range
    checked: int = 0  # entries whose object was checked
    by_checksum: int = 0  # proven by the storage's server-verified checksum (and ETag)
    rehashed: int = 0  # proven by reading the bytes back
    legacy: int = 0  # lines written before proof was recorded
    bytes_read: int = 0
    writers: int = 0  # chains checked
    links: int = 0  # manifest objects under a chain
    unchained: int = 0  # legacy manifest objects under no chain
    pointers: int = 0  # id-index pointers cross-checked
    superseded: int = 0  # call lines a supersede record (archiver dedupe) sets aside
    disposed: int = 0  # recordings gone under a proven tombstone (archiver dispose): DISPOSED
    recordings_listed: int | None = None  # None: no orphan scan (a range was asked)
    waiting: int = 0  # recordings with no line yet, too young to be orphans
    problems: list[Problem] = field(default_factory=list)
    unlisted: int = 0  # UNPROVEN problems past the first LIST_UNPROVEN: counted, not kept
    listed_unproven: int = 0
    chains: ChainAudit | None = None  # the chain as walked (for witnesses and tokens)
    # The latest archived_at by manifest key; with a caller's scratch, a view of its rows.
    archived: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (see :attr:`proven` for "all intact")."""
        return not self.problems and not self.unlisted

    def sampled_bad(self, sample: Sample) -> int:
        """The sampled objects found bad: those the problems name, and the UNPROVEN past the
        listed ones (only sampled objects are checked; at most every one checked)."""
        return min(sample.bad(self.problems) + self.unlisted, self.checked)

    def keep(self, problem: Problem) -> bool:
        """Whether to keep ``problem``: False for an UNPROVEN one past the first
        :data:`LIST_UNPROVEN`, counted in :attr:`unlisted` instead."""
        if problem.kind is ProblemKind.UNPROVEN:
            if self.listed_unproven >= LIST_UNPROVEN:
                self.unlisted += 1
                return False
            self.listed_unproven += 1
        return True

    @property
    def proven(self) -> bool:
        """True when everything was proven intact: nothing wrong, no legacy line."""
        return self.ok and not self.legacy

    def summary(self) -> str:
        """One paragraph for the end of the run; "all intact" only when all was proven."""
        if not self.ok:
            verdict = f"{len(self.problems) + self.unlisted} problem(s)"
        elif self.legacy:
            # Legacy lines are checked by size and stored checksum only: not proven.
            verdict = "nothing found wrong, but not all proven (legacy lines below)"
        else:
            verdict = "all intact"
        unproven = self.unlisted + sum(1 for p in self.problems if p.kind is ProblemKind.UNPROVEN)
        text = (
            f"verified {self.checked - self.disposed} object(s) "
            f"from {self.manifests_read} manifest object(s): "
            f"{verdict}; proven by the storage's checksum {self.by_checksum}, "
            f"re-hashed {self.rehashed} ({self.bytes_read / 1024**2:.1f} MiB read), "
            f"unproven {unproven}"
        )
        if self.legacy:
            text += f"; legacy lines {self.legacy} (size and stored checksum only)"
        text += (
            f"; chain: {self.links} manifest object(s) linked by {self.writers} writer(s)"
            f"; id index: {self.pointers} pointer(s) cross-checked"
        )
        if self.superseded:
            text += f"; {self.superseded} duplicate call line(s) superseded (archiver dedupe)"
        if self.disposed:
            text += f"; DISPOSED {self.disposed} recording(s) (chained tombstones)"
        if self.recordings_listed is None:
            text += "; orphans: not looked for (a range: verify the whole archive)"
        else:
            text += f"; orphans: {self.recordings_listed} recording(s) listed"
            if self.waiting:
                text += f", {self.waiting} recording(s) with no line yet (within the flush bound)"
        if self.unchained:
            text += (
                f"; {self.unchained} legacy manifest object(s) under no chain "
                "(archiver seal chains them)"
            )
        return text
