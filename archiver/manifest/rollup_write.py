"""Writing rollups (``archiver rollup``, and the ``run`` leader): each writer's chain,
from its last rollup to its head, copied in runs of at most ROLLUP_MAX_OBJECTS
manifest objects and ROLLUP_MAX_BYTES of lines (see :mod:`archiver.manifest.rollup`).

Never a broken chain: the links after the last rollup are read in order and
each must name the one before it (by seq and SHA-256), from the last rollup's
end (itself checked against its link) up to the link the head names, with the
head's SHA-256, before anything is written; each manifest object copied must
have the SHA-256 its link records. Otherwise :class:`ChainBreak` names the
break and nothing of that writer is written.

Crash-safe: the entries go first, then the lines, then the record (each a
conditional create). Entries without a record are an unfinished rollup: the
next pass finishes it with the coverage its entries name (the lines are fixed
by the immutable objects they copy, so a rewrite is the identical bytes).

Bounded: one rollup's objects at a time in memory, reads ``concurrency`` at
once; the links read to check the walk are kept for the copy up to
:data:`LINK_CACHE_BYTES`, then read again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from archiver.manifest.chain import Head, Link, sha256_hex
from archiver.manifest.reader import read_object
from archiver.manifest.rollup import (
    ROLLUP_MAX_BYTES,
    ROLLUP_MAX_OBJECTS,
    RollupEntry,
    RollupRecord,
    build_rollup,
    chain_problems,
    date_span,
    parse_entries,
)
from archiver.manifest.rollup_walk import (
    CHUNK,
    ChainBreak,
    Walk,
    WriterListing,
    links_listed,
    read_in_order,
    rollups_listed,
)
from archiver.storage.base import ObjectExistsError, ObjectStore
from archiver.storage.layout import (
    CHAIN_CONTENT_TYPE,
    MANIFEST_CONTENT_TYPE,
    MANIFEST_PREFIX,
    head_key,
    link_key,
    rollup_data_key,
    rollup_entries_key,
    rollup_key,
    stamp_key,
)

log = logging.getLogger("archiver.manifest")

# A timestamp token is a few KiB; a larger ``.tsr`` is not copied (verify reads it).
MAX_TOKEN_BYTES = 64 * 1024


@dataclass
class WriterRollups:
    """What one writer's pass did (or, dry, would do)."""

    writer: str
    records: list[RollupRecord] = field(default_factory=list)  # written (or due, dry)
    finished: int | None = None  # the unfinished rollup finished, by number
    due: int = 0  # manifest objects not yet under a rollup, up to the head
    skipped: str | None = None  # why this writer is not rolled up

    @property
    def objects(self) -> int:
        """Manifest objects covered by the rollups written here."""
        return sum(r.objects for r in self.records)


async def _put(store: ObjectStore, key: str, data: bytes, content_type: str) -> None:
    try:
        await store.put_bytes(key, data, sha256=sha256_hex(data), content_type=content_type)
    except ObjectExistsError:
        raise ChainBreak(
            key, "another object is already there (not this rollup's bytes): planted, or altered"
        ) from None


class RollupWriter:
    """One writer's rollups, written (see the module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        writer: str,
        *,
        now: Callable[[], datetime],
        concurrency: int = 16,
        max_objects: int = ROLLUP_MAX_OBJECTS,
        max_bytes: int = ROLLUP_MAX_BYTES,
    ) -> None:
        self.store, self.writer, self.now = store, writer, now
        self.concurrency, self.max_objects, self.max_bytes = concurrency, max_objects, max_bytes

    async def run(self, *, dry_run: bool = False) -> WriterRollups:
        """Roll up everything from the last rollup to the head; ChainBreak on a broken chain."""
        done = WriterRollups(self.writer)
        chain = WriterListing()
        await rollups_listed(self.store, self.writer, chain)
        last = max(chain.records, default=0)
        previous = await self._read(rollup_key(self.writer, last)) if last else None
        start = await self._start(last, previous)
        await links_listed(self.store, self.writer, chain, start[0] if start else None)
        if not chain.head:
            if chain.seqs or start is not None:
                raise ChainBreak(head_key(self.writer), "the chain head is missing")
            done.skipped = "no chain"
            return done
        head = await self._head()
        seqs = [s for s in chain.seqs if (start is None or s > start[0]) and s <= head.seq]
        if not seqs:
            return done
        if start is None and not await self._of_manifests(seqs[0]):
            done.skipped = "a chain of records, not of manifest objects"
            return done
        walk = Walk(self.store, self.writer, self.concurrency)
        await walk.check(seqs, start, head)
        done.due = len(seqs)
        n = last + 1
        if n in chain.entries:  # an unfinished rollup: finish it with its own coverage
            record = await self._finish(n, walk, start, chain, previous, dry_run)
            done.records.append(record)
            done.finished = n
            previous, n = record.to_bytes(), n + 1
            seqs = [s for s in seqs if s > record.last_seq]
        group: list[tuple[Link, bytes]] = []
        size = 0
        for at in range(0, len(seqs), CHUNK):
            for data in await walk.links(seqs[at : at + CHUNK]):
                link = Link.from_bytes(data)
                if group and (
                    len(group) >= self.max_objects or size + link.manifest_size > self.max_bytes
                ):
                    record = await self._write(n, group, chain, previous, dry_run)
                    done.records.append(record)
                    previous, n, group, size = record.to_bytes(), n + 1, [], 0
                group.append((link, data))
                size += link.manifest_size
        if group:
            done.records.append(await self._write(n, group, chain, previous, dry_run))
        return done

    async def _read(self, key: str) -> bytes:
        try:
            return await read_object(self.store, key)
        except KeyError:
            raise ChainBreak(key, "vanished while being read") from None

    async def _of_manifests(self, seq: int) -> bool:
        """Whether the writer's first link is a manifest object's (else a chain of records)."""
        try:
            link = Link.from_bytes(await self._read(link_key(self.writer, seq)))
        except ValueError:
            return True  # unreadable: the walk names it
        return link.manifest_key.startswith(MANIFEST_PREFIX)

    async def _head(self) -> Head:
        key = head_key(self.writer)
        try:
            return Head.from_bytes(await self._read(key))
        except ValueError as exc:
            raise ChainBreak(key, f"unreadable head: {exc}") from None

    async def _start(self, last: int, previous: bytes | None) -> tuple[int, str] | None:
        """Where the next rollup starts: the last record's end, checked against its link."""
        if previous is None:
            return None
        key = rollup_key(self.writer, last)
        try:
            record = RollupRecord.from_bytes(previous)
        except ValueError as exc:
            raise ChainBreak(key, f"unreadable rollup record: {exc}") from None
        if (record.writer, record.n) != (self.writer, last):
            raise ChainBreak(key, f"the record says it is {record.key}")
        end = await self._read(link_key(self.writer, record.last_seq))
        if sha256_hex(end) != record.end_sha256:
            raise ChainBreak(
                key,
                f"it ends at link {record.last_seq} with SHA-256 {record.end_sha256}; "
                f"that link's is {sha256_hex(end)}",
            )
        return record.last_seq, record.end_sha256

    async def _tokens(self, seqs: Iterable[int], chain: WriterListing) -> dict[int, bytes | None]:
        wanted = [s for s in seqs if 0 < chain.tokens.get(s, 0) <= MAX_TOKEN_BYTES]
        keys = [stamp_key(self.writer, s) for s in wanted]
        return dict(
            zip(wanted, await read_in_order(self.store, keys, self.concurrency), strict=True)
        )

    async def _manifests(self, links: Sequence[Link]) -> list[bytes]:
        keys = [link.manifest_key for link in links]
        found = await read_in_order(self.store, keys, self.concurrency)
        for link, content in zip(links, found, strict=True):
            if content is None:
                raise ChainBreak(link.manifest_key, f"missing; link {link.key} records it")
            if (sha256_hex(content), len(content)) != (link.manifest_sha256, link.manifest_size):
                raise ChainBreak(
                    link.manifest_key,
                    f"altered: {len(content)} bytes with SHA-256 {sha256_hex(content)}; link "
                    f"{link.key} records {link.manifest_size} with {link.manifest_sha256}",
                )
        return [c for c in found if c is not None]

    async def _write(
        self,
        n: int,
        group: list[tuple[Link, bytes]],
        chain: WriterListing,
        previous: bytes | None,
        dry_run: bool,
        entries: list[RollupEntry] | None = None,
    ) -> RollupRecord:
        links = [link for link, _ in group]
        if entries is None:
            seqs = [link.seq for link in links]
            tokens = {} if dry_run else await self._tokens(seqs, chain)
            entries = [RollupEntry(link.seq, data, tokens.get(link.seq)) for link, data in group]
        if dry_run:
            return _planned(self.writer, n, links, entries)
        manifests = await self._manifests(links)
        try:
            entries_bytes, data, record = build_rollup(
                self.writer,
                n,
                entries,
                manifests,
                prev_record=previous,
                created_at=self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        except ValueError as exc:
            raise ChainBreak(rollup_entries_key(self.writer, n), str(exc)) from None
        # Entries first, the lines second, the record last (the commit point).
        await _put(self.store, record.entries_key, entries_bytes, MANIFEST_CONTENT_TYPE)
        await _put(self.store, record.data_key, data, MANIFEST_CONTENT_TYPE)
        await _put(self.store, record.key, record.to_bytes(), CHAIN_CONTENT_TYPE)
        log.info(
            "rollup %s: links %d..%d, %d manifest object(s), %d line(s)",
            record.key,
            record.first_seq,
            record.last_seq,
            record.objects,
            record.lines,
        )
        return record

    async def _finish(
        self,
        n: int,
        walk: Walk,
        start: tuple[int, str] | None,
        chain: WriterListing,
        previous: bytes | None,
        dry_run: bool,
    ) -> RollupRecord:
        key = rollup_entries_key(self.writer, n)
        try:
            entries = parse_entries(await self._read(key))
        except ValueError as exc:
            raise ChainBreak(key, f"an unfinished rollup with unreadable entries: {exc}") from None
        wrong = chain_problems(entries, self.writer)
        if not entries or wrong:
            raise ChainBreak(key, wrong[0] if wrong else "an unfinished rollup with no entries")
        links = [Link.from_bytes(e.link) for e in entries]
        if (links[0].prev_seq, links[0].prev_sha256) != (start or (None, None)):
            raise ChainBreak(key, "an unfinished rollup that does not start after the last one")
        stored = await walk.links([e.seq for e in entries]) if _on(walk, entries) else []
        if stored != [e.link for e in entries]:
            raise ChainBreak(key, "an unfinished rollup whose links are not the chain's")
        log.info("rollup %s: unfinished, finished with its own coverage", key)
        group = list(zip(links, stored, strict=True))
        return await self._write(n, group, chain, previous, dry_run, entries)


def _on(walk: Walk, entries: Sequence[RollupEntry]) -> bool:
    """True when the entries' seqs are the first links of the checked walk."""
    return [e.seq for e in entries] == walk.seqs[: len(entries)]


def _planned(writer: str, n: int, links: list[Link], entries: list[RollupEntry]) -> RollupRecord:
    """A dry run's record: what rollup ``n`` would cover (the parts' hashes not computed)."""
    first, last = date_span(link.manifest_key for link in links)
    return RollupRecord(
        writer=writer,
        n=n,
        first_seq=links[0].seq,
        last_seq=links[-1].seq,
        prev_seq=links[0].prev_seq,
        prev_sha256=links[0].prev_sha256,
        end_sha256=sha256_hex(entries[-1].link),
        objects=len(links),
        lines=sum(link.lines for link in links),
        data_key=rollup_data_key(writer, n),
        data_sha256="",
        data_size=sum(link.manifest_size for link in links),
        entries_key=rollup_entries_key(writer, n),
        entries_sha256="",
        entries_size=0,
        first_date=first,
        last_date=last,
        prev_rollup_sha256=None,
        created_at="",
    )
