"""``verify``'s timestamp check: every link's RFC 3161 token, from a writer's first stamped link on.

Each link the writer made its head is time-stamped (``<seq>.tsr`` beside it);
one the authority could not stamp is stamped at the writer's next write. So,
walking a writer's chain from its first stamped link on:

- a link without a token is ``UNPROVEN`` (the authority was down and no later
  write of this writer has stamped it yet; or the token was removed);
- a token that does not verify (other bytes, another CA, altered) is ``TIMESTAMP``;
- a token a checked rollup holds is taken from it when the listing proves the
  stored token is that copy (:mod:`archiver.retrieval.rollup_audit`), else read;
- a token dated before the token of an earlier link, or before the
  ``archived_at`` of a line its manifest object holds (beyond :data:`SKEW`), is
  ``TIMESTAMP``: a token replaced by a later one, or lines dated after the fact.

Links before the first stamped one were written before timestamps were
switched on (or while the authority was down from the start): reported once,
as such, not as problems. Without a witness, verify cannot tell them from a
chain whose first tokens were removed: the report says so.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509

from archiver.errors import TimestampInvalidError
from archiver.retrieval.chain_audit import ChainAudit
from archiver.retrieval.chain_walk import WalkTable
from archiver.retrieval.link_table import LinkTable, key_by_link
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.rollup_audit import Rollup, RollupAudit, listed_bytes
from archiver.storage.base import ObjectStore
from archiver.storage.layout import CHAIN_PREFIX, stamp_key
from archiver.timestamping import STAMP_SUFFIX, Timestamp, read_token, verify_token_digest

# The archiver's clock against the authority's: a line may say it was archived this
# much after the token of its link without being called a forgery.
SKEW = timedelta(minutes=5)


@dataclass
class WriterStamps:
    """One writer's tokens, as checked."""

    writer: str
    links: int = 0  # links on the chain
    unstamped_before: int = 0  # links before the first stamped one
    checked: int = 0  # valid tokens
    first: Timestamp | None = None
    last: Timestamp | None = None
    last_key: str = ""
    unchecked: bool = False  # tokens there, but no CA bundle to check them against

    def line(self) -> str:
        """One line for the verify report."""
        head = f"TIMESTAMP chain {self.writer}: "
        if self.unchecked:
            return head + "tokens not checked: ARCHIVER_TIMESTAMP__CA_BUNDLE is not set"
        if self.last is None:
            return head + (
                f"no timestamp token on any of its {self.links} link(s) (written before "
                "timestamps were switched on, or the authority was down; one is asked at the "
                "next write)"
            )
        text = (
            f"{self.checked} link(s) each with a valid token, the newest time-stamped at "
            f"{self.last.describe_time()} ({self.last_key})"
        )
        if self.unstamped_before:
            text += (
                f"; its first {self.unstamped_before} link(s) have no token: written before "
                "timestamps were switched on (verify cannot tell that from tokens removed "
                "from the start of the chain: a witness can)"
            )
        return head + text


@dataclass
class StampReport:
    """Every writer's tokens."""

    writers: list[WriterStamps] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    present: int = 0  # tokens found in the storage

    @property
    def checked(self) -> int:
        """Valid tokens."""
        return sum(w.checked for w in self.writers)


# The links checked at a time: their tokens read (or taken from a rollup) together.
CHUNK = 2048


class _Listed:
    """A writer's listed tokens (seq -> size, ETag) on verify's scratch file, not in
    memory: one a link, 1.2 million at 5 million calls in the service's shape."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(
            "CREATE TABLE IF NOT EXISTS stamp_listed"
            " (seq INTEGER PRIMARY KEY, size INTEGER, etag TEXT)"
        )
        db.execute("DELETE FROM stamp_listed")
        self.count = 0

    async def fill(self, store: ObjectStore, writer: str) -> None:
        rows: list[tuple[int, int, str | None]] = []
        async for obj in store.list(f"{CHAIN_PREFIX}{writer}/"):
            name = obj.key[len(CHAIN_PREFIX) + len(writer) + 1 :]
            stem = name.removesuffix(STAMP_SUFFIX)
            # Only the name the archiver writes: a planted "00000000000001.tsr" would
            # otherwise stand in for the real token of link 1.
            if (
                name.endswith(STAMP_SUFFIX)
                and stem.isascii()
                and stem.isdigit()
                and stamp_key(writer, int(stem)) == obj.key
            ):
                rows.append((int(stem), obj.size, obj.proof.etag))
                if len(rows) >= CHUNK:
                    self._add(rows)
        self._add(rows)

    def _add(self, rows: list[tuple[int, int, str | None]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO stamp_listed VALUES (?, ?, ?)", rows)
        self.count += len(rows)
        rows.clear()

    def between(self, low: int, high: int) -> dict[int, tuple[int, str | None]]:
        rows = self.db.execute(
            "SELECT seq, size, etag FROM stamp_listed WHERE seq BETWEEN ? AND ?", (low, high)
        )
        return {seq: (size, etag) for seq, size, etag in rows}

    def close(self) -> None:
        self.db.execute("DROP TABLE IF EXISTS stamp_listed")


class _Copies:
    """The tokens ``writer``'s checked rollups hold, one rollup's at a time, for seqs asked
    in increasing order."""

    def __init__(self, store: ObjectStore, rollups: RollupAudit, writer: str) -> None:
        self._store, self._audit = store, rollups
        self._ahead = list(rollups.of_writer(writer))
        self._held: list[tuple[Rollup, dict[int, bytes]]] = []

    async def between(self, low: int, high: int) -> dict[int, bytes]:
        self._held = [(r, t) for r, t in self._held if r.record.last_seq >= low]
        while self._ahead and self._ahead[0].record.first_seq <= high:
            rollup = self._ahead.pop(0)
            if rollup.record.last_seq >= low:
                self._held.append((rollup, await self._audit.token_copies(self._store, rollup)))
        return {seq: t for _, ts in self._held for seq, t in ts.items() if low <= seq <= high}


def _increasing(walk: Mapping[int, str]) -> Iterator[int]:
    """The walk's seqs in increasing order (a verify's is read from its scratch file, a page
    at a time, already in order)."""
    return iter(walk) if isinstance(walk, WalkTable) else iter(sorted(walk))


async def _read_tokens(store: ObjectStore, keys: Iterable[str]) -> dict[str, bytes | str | None]:
    semaphore = asyncio.Semaphore(16)

    async def one(key: str) -> tuple[str, bytes | str | None]:
        async with semaphore:
            try:
                return key, await read_token(store, key)
            except TimestampInvalidError as exc:
                return key, str(exc)

    return dict(await asyncio.gather(*(one(key) for key in keys)))


async def audit_stamps(
    store: ObjectStore,
    chains: ChainAudit,
    anchors: list[x509.Certificate] | None,
    archived: Mapping[str, datetime],
) -> StampReport:
    """Check every writer's tokens; ``archived``: the latest ``archived_at`` of each
    manifest object read (by key).

    A writer at a time, its links :data:`CHUNK` at a time in seq order: the listed
    tokens wait on a temporary file, a rollup's copies are held while their links are
    checked, so memory does not grow with the chain (one token a link: 1.2 million at
    5 million calls)."""
    report = StampReport()
    # On verify's scratch file a query each, not a dict of every link.
    manifest_of = key_by_link(chains.links)
    db = chains.links.db if isinstance(chains.links, LinkTable) else sqlite3.connect(":memory:")
    for writer, walk in sorted(chains.state.walks.items()):
        stamps = WriterStamps(writer, links=len(walk))
        report.writers.append(stamps)
        listed = _Listed(db)
        try:
            await listed.fill(store, writer)
            report.present += listed.count
            check = _WriterCheck(store, writer, anchors, stamps, report, archived)
            copies = _Copies(store, chains.rollups, writer)
            seqs = _increasing(walk)
            while (chunk := list(itertools.islice(seqs, CHUNK))) and not stamps.unchecked:
                await check.chunk(chunk, walk, listed, copies, manifest_of)
                report.problems += chains.rollups.take_problems()
        finally:
            listed.close()
    return report


@dataclass
class _WriterCheck:
    """One writer's tokens checked in seq order, a chunk of links at a time."""

    store: ObjectStore
    writer: str
    anchors: list[x509.Certificate] | None  # None: no CA bundle, the tokens not checked
    stamps: WriterStamps
    report: StampReport
    archived: Mapping[str, datetime]
    first: int | None = None  # the first stamped link's seq, once met
    previous: Timestamp | None = None

    async def chunk(
        self,
        seqs: list[int],
        walk: Mapping[int, str],
        listed: _Listed,
        copies: _Copies,
        manifest_of: Callable[[str, int], str | None],
    ) -> None:
        present = listed.between(seqs[0], seqs[-1])
        if self.first is None:
            stamped = [seq for seq in seqs if seq in present]
            if not stamped:
                self.stamps.unstamped_before += len(seqs)
                return
            if self.anchors is None:
                self.stamps.unchecked, self.stamps.unstamped_before = True, 0
                return
            self.first = stamped[0]
            self.stamps.unstamped_before += seqs.index(self.first)
            seqs = seqs[seqs.index(self.first) :]
        # A token a checked rollup holds is not read when the listing proves it is that copy.
        held = await copies.between(seqs[0], seqs[-1])
        raw: dict[str, bytes | str | None] = {}
        unread = []
        for seq in seqs:
            if seq in present:
                key = stamp_key(self.writer, seq)
                copy = held.get(seq)
                if copy is not None and listed_bytes(*present[seq], copy):
                    raw[key] = copy
                else:
                    unread.append(key)
        raw.update(await _read_tokens(self.store, unread))
        for seq in seqs:
            self._one(seq, raw.get(stamp_key(self.writer, seq)), walk[seq], manifest_of)

    def _one(
        self,
        seq: int,
        token: bytes | str | None,
        link_sha256: str,
        manifest_of: Callable[[str, int], str | None],
    ) -> None:
        shown = self.store.full_key(stamp_key(self.writer, seq))

        def problem(kind: ProblemKind, detail: str) -> None:
            self.report.problems.append(Problem(kind, shown, detail))

        if token is None:
            problem(
                ProblemKind.UNPROVEN,
                f"link {seq} of writer {self.writer} has no timestamp token although link "
                f"{self.first} and later ones have: the authority could not stamp it and no "
                "later write has yet, or its token was removed",
            )
            return
        if isinstance(token, str):
            problem(ProblemKind.TIMESTAMP, f"INVALID: {token}")
            return
        try:
            stamp = verify_token_digest(token, bytes.fromhex(link_sha256), self.anchors or [])
        except TimestampInvalidError as exc:
            problem(ProblemKind.TIMESTAMP, f"INVALID: {exc}")
            return
        stamps = self.stamps
        stamps.checked += 1
        stamps.first = stamps.first or stamp
        stamps.last, stamps.last_key = stamp, shown
        if self.previous is not None and stamp.gen_time < self.previous.gen_time:
            problem(
                ProblemKind.TIMESTAMP,
                f"dated {stamp.describe_time()}, before the token of an earlier link "
                f"({self.previous.describe_time()}): a token replaced by another",
            )
        self.previous = stamp
        manifest = manifest_of(self.writer, seq)
        latest = self.archived.get(manifest) if manifest else None
        if latest is not None and latest > stamp.gen_time + SKEW:
            problem(
                ProblemKind.TIMESTAMP,
                f"dated {stamp.describe_time()}, before the lines of {manifest} say they "
                f"were archived ({latest.isoformat()}): lines dated after the fact",
            )
