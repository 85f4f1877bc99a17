"""``verify --since/--until`` through rollups: the chain proven for a range without reading it all.

A full verify reads (or proves from the listing) every link of every writer.
For a range, rollups (:mod:`archiver.manifest.rollup`) let it read much less:

- every rollup *record* (one small object per rollup) is read, and the
  records of each writer checked for continuity: record ``n`` starts where
  record ``n - 1`` ends (``prev_seq/prev_sha256`` == its ``last_seq/end_sha256``)
  and names its bytes (``prev_rollup_sha256``);
- the links after the last rollup are read and walked back from the writer's
  head down to the last rollup's end: the head vouches for the newest record,
  and through the records' continuity for every rollup;
- the rollups whose dates meet the range are checked in full (entries and
  lines, :func:`~archiver.manifest.rollup.check_rollup`): their links name
  the range's manifest objects, which verify then reads (or proves from a
  rollup's lines and the listing) and checks with their recordings as usual;
- writers without rollups (supersede and tombstone records, an archive never
  rolled up) are walked whole, as a full verify walks them.

What is not re-proven is said (:meth:`RangeChainAudit.note`): the links and
manifest objects of the rollups outside the range are taken from their
records' continuity, not re-read; a full verify re-proves them. Witnessed
checkpoints, the heads' version history and the trusted timestamps need the
whole walk: a range verify leaves them to a full verify and says so. Any
rollup that does not check out sends its writer back to the whole walk.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from archiver.manifest.chain import MAX_COUNT, Head, Link, sha256_hex
from archiver.manifest.reader import date_span, read_object
from archiver.manifest.rollup import RollupRecord, check_rollup
from archiver.manifest.rollup_read import RollupRef, list_rollups
from archiver.manifest.rollup_walk import manifest_writers
from archiver.retrieval.chain_audit import ChainAudit, audit_chains, audit_writer
from archiver.retrieval.chain_walk import ChainWalks
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.rollup_audit import Rollup
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    CHAIN_PREFIX,
    head_key,
    link_key,
    parse_chain_key,
    rollup_data_key,
    rollup_entries_key,
)

_READ_AT_ONCE = 16


@dataclass
class RangeNote:
    """What a range verify re-proved, and what it took from the rollup records."""

    records: int = 0  # rollup records read and checked for continuity
    rollups: int = 0  # rollups meeting the range, checked in full
    trusted_objects: int = 0  # manifest objects of the other rollups: not re-read
    tail_links: int = 0  # links after the last rollup, read and walked
    whole_writers: list[str] = field(default_factory=list)  # writers walked whole

    def line(self) -> str:
        """One line for the report: what was re-proven, what was taken from the records."""
        text = (
            f"RANGE through rollups: re-proven the range's manifest objects and recordings, "
            f"{self.rollups} rollup(s) meeting the range (entries and lines), "
            f"{self.tail_links} link(s) after the last rollup up to the head"
        )
        if self.whole_writers:
            text += f", {len(self.whole_writers)} writer(s) walked whole"
        text += (
            f"; taken from {self.records} rollup record(s) (their continuity checked, their "
            f"objects not re-read): {self.trusted_objects} manifest object(s) outside the range; "
            "witnessed checkpoints, head history and timestamps not checked: run a full "
            "verify to re-prove them"
        )
        return text


@dataclass
class RangeChainAudit(ChainAudit):
    """A :class:`ChainAudit` for a range: the links it needs, not every link (see the module)."""

    range_note: RangeNote = field(default_factory=RangeNote)


async def chains_for(
    store: ObjectStore,
    since: datetime | None,
    until: datetime | None,
    tz: tzinfo,
    links: MutableMapping[str, Link] | None = None,
    db: sqlite3.Connection | None = None,
) -> ChainAudit:
    """The chain audit verify needs: through rollups for a range when there are any,
    else every writer's whole chain (:func:`audit_chains`). ``links``: where the
    checked links go (None: a dict); ``db``: where a whole chain is walked (None: in
    memory)."""
    if since is None and until is None:
        return await audit_chains(store, links, db)
    refs = await list_rollups(store)
    if not refs:
        return await audit_chains(store, links, db)
    first, last = date_span(since, until, tz)
    return await audit_range(store, refs, first, last, links, db)


async def _read_all(store: ObjectStore, keys: Iterable[str]) -> dict[str, bytes | None]:
    semaphore = asyncio.Semaphore(_READ_AT_ONCE)

    async def one(key: str) -> tuple[str, bytes | None]:
        async with semaphore:
            try:
                return key, await read_object(store, key)
            except KeyError:
                return key, None

    return dict(await asyncio.gather(*(one(key) for key in keys)))


async def audit_range(
    store: ObjectStore,
    refs: list[RollupRef],
    first: date,
    last: date,
    links: MutableMapping[str, Link] | None = None,
    db: sqlite3.Connection | None = None,
) -> RangeChainAudit:
    """The chain proven for manifest partitions [first, last] (see the module). ``db``:
    where a writer walked whole is walked (verify's scratch file; None: in memory)."""
    audit = RangeChainAudit(links={} if links is None else links)
    walks: ChainWalks | None = None
    writers = await manifest_writers(store)
    audit.writer_ids = set(writers)
    audit.writers = len(writers)
    by_writer: dict[str, list[RollupRef]] = {}
    for ref in refs:
        by_writer.setdefault(ref.writer, []).append(ref)
    for writer in writers:
        rolled = by_writer.get(writer)
        if not rolled or not await _through_rollups(store, audit, writer, rolled, first, last):
            audit.range_note.whole_writers.append(writer)
            if walks is None:
                walks = ChainWalks(db if db is not None else sqlite3.connect(":memory:"))
            await _walk_whole(store, audit, walks, writer)
    return audit


async def _walk_whole(
    store: ObjectStore, audit: RangeChainAudit, walks: ChainWalks, writer: str
) -> None:
    """``writer``'s whole chain, as a full verify walks it: its folder listed onto
    ``walks`` (a row a link: a writer never rolled up, or whose rollup does not check
    out, has up to a link per manifest object, 700,000 for the largest at 5 million
    calls), its links read 16 at a time and walked back from its head."""
    has_head = False
    async for obj in store.list(f"{CHAIN_PREFIX}{writer}/"):
        parsed = parse_chain_key(obj.key)
        if parsed is None or parsed[0] != writer:
            continue  # timestamps and anything else beside the links
        if parsed[1] is None:
            has_head = True
        elif parsed[1] > MAX_COUNT:
            _problem(audit, ProblemKind.CHAIN_BROKEN, obj.key, "a link number no link can have")
        else:
            walks.add_listed(writer, parsed[1], obj.size, obj.proof.etag)
    walks.listed_all()
    await audit_writer(store, audit, walks, writer, has_head)


def _walk_of(audit: ChainAudit, writer: str) -> dict[int, str]:
    """The walk of ``writer`` this range audit fills (a dict of its own)."""
    walk = audit.state.walks.get(writer)
    if not isinstance(walk, dict):
        walk = audit.state.walks[writer] = {}
    return walk


def _problem(audit: ChainAudit, kind: ProblemKind, where: str, detail: str) -> None:
    audit.problems.append(Problem(kind, where, detail))


async def _records(
    store: ObjectStore, audit: RangeChainAudit, writer: str, refs: list[RollupRef]
) -> list[tuple[RollupRecord, bytes]] | None:
    """Every record of ``writer``, checked for continuity; None (problems said) if not."""
    raw = await _read_all(store, [ref.key for ref in refs])
    records: list[tuple[RollupRecord, bytes]] = []
    for number, ref in enumerate(sorted(refs, key=lambda r: r.n), start=1):
        data = raw.get(ref.key)
        if ref.n != number:
            _problem(audit, ProblemKind.ROLLUP, ref.key, f"rollup {number} is missing")
            return None
        try:
            record = RollupRecord.from_bytes(data or b"")
        except ValueError as exc:
            _problem(audit, ProblemKind.ROLLUP, ref.key, f"unreadable: {exc}")
            return None
        if (record.writer, record.n) != (writer, ref.n):
            _problem(audit, ProblemKind.ROLLUP, ref.key, f"the record says it is {record.key}")
            return None
        if records:
            before, before_bytes = records[-1]
            if (record.prev_seq, record.prev_sha256) != (before.last_seq, before.end_sha256):
                detail = f"it starts after link {record.prev_seq}; rollup {before.n} ends at "
                detail += f"link {before.last_seq} (rollups overlap or leave a gap)"
                _problem(audit, ProblemKind.ROLLUP, ref.key, detail)
                return None
            if record.prev_rollup_sha256 != hashlib.sha256(before_bytes).hexdigest():
                detail = f"it does not name the bytes of rollup {before.n}'s record"
                _problem(audit, ProblemKind.ROLLUP, ref.key, detail)
                return None
        elif record.prev_rollup_sha256 is not None:
            _problem(audit, ProblemKind.ROLLUP, ref.key, "the first rollup names one before it")
            return None
        records.append((record, data or b""))
    audit.range_note.records += len(records)
    return records


async def _through_rollups(
    store: ObjectStore,
    audit: RangeChainAudit,
    writer: str,
    refs: list[RollupRef],
    first: date,
    last: date,
) -> bool:
    """Prove ``writer``'s part of the range through its rollups; False (problems said)
    when they do not check out: the caller then walks the writer whole."""
    records = await _records(store, audit, writer, refs)
    if not records:
        return False
    walk = _walk_of(audit, writer)
    kept: list[Rollup] = []
    for record, record_bytes in records:
        walk[record.last_seq] = record.end_sha256
        if not (record.first_date <= last.isoformat() and first.isoformat() <= record.last_date):
            audit.range_note.trusted_objects += record.objects
            continue
        entries_key = rollup_entries_key(writer, record.n)
        data_key = rollup_data_key(writer, record.n)
        parts = await _read_all(store, [entries_key, data_key])
        entries, data = parts.get(entries_key), parts.get(data_key)
        if entries is None or data is None:
            _problem(audit, ProblemKind.ROLLUP, record.key, "its entries or lines are missing")
            return False
        checked = check_rollup(record_bytes, entries, data, record.key)
        if not checked.ok:
            for wrong in checked.problems:
                _problem(audit, ProblemKind.ROLLUP, wrong.where, wrong.detail)
            return False
        for obj in checked.objects:
            audit.links[obj.manifest_key] = obj.link
            walk[obj.seq] = obj.link_sha256
        kept.append(Rollup(record, record_bytes))
        audit.range_note.rollups += 1
    if kept:
        audit.rollups.rollups[writer] = kept
    end = records[-1][0]
    # A tail that does not walk is said as such (CHAIN_BROKEN): the rollups stand.
    await _walk_back(store, audit, writer, (end.last_seq, end.end_sha256))
    return True


async def _walk_back(
    store: ObjectStore, audit: RangeChainAudit, writer: str, stop: tuple[int, str] | None
) -> bool:
    """Read ``writer``'s links after ``stop`` (all of them for None) and walk them back
    from the head to ``stop`` (to the first link for None); False if the walk breaks."""

    def broken(where: str, detail: str) -> bool:
        _problem(audit, ProblemKind.CHAIN_BROKEN, where, detail)
        return False

    after = link_key(writer, stop[0]) if stop is not None else ""
    seqs = []
    async for obj in store.list(f"{CHAIN_PREFIX}{writer}/", start_after=after):
        parsed = parse_chain_key(obj.key)
        if parsed is not None and parsed[0] == writer and parsed[1] is not None:
            seqs.append(parsed[1])
    raw = await _read_all(store, [link_key(writer, seq) for seq in seqs])
    links: dict[int, tuple[Link, str]] = {}
    for seq in seqs:
        data = raw.get(link_key(writer, seq))
        try:
            link = Link.from_bytes(data or b"")
        except ValueError as exc:
            return broken(link_key(writer, seq), f"unreadable link: {exc}")
        if (link.writer, link.seq) != (writer, seq):
            return broken(link_key(writer, seq), f"the link says it is {link.key}")
        links[seq] = (link, sha256_hex(data or b""))
    if stop is not None:
        audit.range_note.tail_links += len(links)
    try:
        head = Head.from_bytes(await read_object(store, head_key(writer)))
    except KeyError:
        if not links and stop is None:
            return True
        return broken(head_key(writer), "the chain head is missing")
    except ValueError as exc:
        return broken(head_key(writer), f"unreadable head: {exc}")
    audit.state.heads[writer] = (head.seq, head.link_sha256)
    walk = _walk_of(audit, writer)
    seq, expected = head.seq, head.link_sha256
    on_walk: set[int] = set()
    while stop is None or seq != stop[0]:
        if seq not in links:
            return broken(link_key(writer, seq), "missing: the walk back from the head needs it")
        link, sha = links[seq]
        if sha != expected:
            return broken(link.key, f"altered: its SHA-256 is {sha}, the next records {expected}")
        on_walk.add(seq)
        walk[seq] = sha
        audit.links[link.manifest_key] = link
        if link.prev_seq is None or link.prev_sha256 is None:
            if stop is not None:
                return broken(link.key, f"the chain starts here, before the rollups' end {stop[0]}")
            break
        seq, expected = link.prev_seq, link.prev_sha256
    else:
        if stop is not None and expected != stop[1]:
            detail = f"the chain after it names it as {expected}; the last rollup ends with "
            return broken(link_key(writer, stop[0]), detail + stop[1])
    for seq, (link, _) in sorted(links.items()):
        if seq in on_walk:
            continue
        if seq > head.seq:
            detail = f"written after the head (link {head.seq}), so no head vouches for it"
            _problem(audit, ProblemKind.UNPROVEN, link.key, detail)
        else:
            detail = f"not on the chain walked back from the head (link {head.seq})"
            _problem(audit, ProblemKind.CHAIN_BROKEN, link.key, detail)
            if audit.links.get(link.manifest_key) == link:
                del audit.links[link.manifest_key]
    return True
