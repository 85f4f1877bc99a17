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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509

from archiver.errors import TimestampInvalidError
from archiver.retrieval.chain_audit import ChainAudit
from archiver.retrieval.link_table import key_by_link
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.rollup_audit import listed_as
from archiver.storage.base import ObjectStore, StoredObject
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


async def _tokens(store: ObjectStore) -> dict[tuple[str, int], StoredObject]:
    found = {}
    async for obj in store.list(CHAIN_PREFIX):
        writer, _, name = obj.key[len(CHAIN_PREFIX) :].partition("/")
        stem = name.removesuffix(STAMP_SUFFIX)
        if name.endswith(STAMP_SUFFIX) and stem.isascii() and stem.isdigit():
            found[writer, int(stem)] = obj
    return found


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
    manifest object read (by key)."""
    report = StampReport()
    present = await _tokens(store)
    report.present = len(present)
    # On verify's scratch file a query each, not a dict of every link.
    manifest_of = key_by_link(chains.links)
    for writer, walk in sorted(chains.state.walks.items()):
        stamps = WriterStamps(writer, links=len(walk))
        report.writers.append(stamps)
        seqs = sorted(walk)
        stamped = [seq for seq in seqs if (writer, seq) in present]
        if not stamped:
            continue
        if anchors is None:
            stamps.unchecked = True
            continue
        first = stamped[0]
        stamps.unstamped_before = seqs.index(first)
        later = [seq for seq in seqs if seq >= first]
        # A token a checked rollup holds is not read when the listing proves it is that copy.
        copies = await chains.rollups.token_copies(store, writer)
        report.problems += chains.rollups.take_problems()
        proven = {
            stamp_key(writer, s): copies[s]
            for s in stamped
            if s in copies and listed_as(present[writer, s], copies[s])
        }
        unread = [stamp_key(writer, s) for s in stamped if stamp_key(writer, s) not in proven]
        raw = await _read_tokens(store, unread)
        raw.update(proven)
        previous: Timestamp | None = None
        for seq in later:
            key = stamp_key(writer, seq)
            shown = store.full_key(key)

            def problem(kind: ProblemKind, detail: str, where: str = shown) -> None:
                report.problems.append(Problem(kind, where, detail))

            token = raw.get(key)
            if token is None:
                problem(
                    ProblemKind.UNPROVEN,
                    f"link {seq} of writer {writer} has no timestamp token although link "
                    f"{first} and later ones have: the authority could not stamp it and no "
                    "later write has yet, or its token was removed",
                )
                continue
            if isinstance(token, str):
                problem(ProblemKind.TIMESTAMP, f"INVALID: {token}")
                continue
            try:
                stamp = verify_token_digest(token, bytes.fromhex(walk[seq]), anchors)
            except TimestampInvalidError as exc:
                problem(ProblemKind.TIMESTAMP, f"INVALID: {exc}")
                continue
            stamps.checked += 1
            stamps.first = stamps.first or stamp
            stamps.last, stamps.last_key = stamp, shown
            if previous is not None and stamp.gen_time < previous.gen_time:
                problem(
                    ProblemKind.TIMESTAMP,
                    f"dated {stamp.describe_time()}, before the token of an earlier link "
                    f"({previous.describe_time()}): a token replaced by another",
                )
            previous = stamp
            manifest = manifest_of(writer, seq)
            latest = archived.get(manifest) if manifest else None
            if latest is not None and latest > stamp.gen_time + SKEW:
                problem(
                    ProblemKind.TIMESTAMP,
                    f"dated {stamp.describe_time()}, before the lines of {manifest} say they "
                    f"were archived ({latest.isoformat()}): lines dated after the fact",
                )
    return report
