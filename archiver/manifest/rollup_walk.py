"""Reading a writer's chain for a rollup: its listing, and the walk from the last rollup
to the head, checked link by link (see :mod:`archiver.manifest.rollup_write`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from archiver.errors import ArchiverError
from archiver.manifest.chain import Head, Link, sha256_hex
from archiver.manifest.reader import read_object
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    CHAIN_PREFIX,
    MANIFEST_PREFIX,
    ROLLUP_ENTRIES,
    ROLLUP_PREFIX,
    ROLLUP_RECORD,
    head_key,
    link_key,
    parse_chain_key,
    parse_rollup_key,
    stamp_key,
)

LINK_CACHE_BYTES = 32 * 1024 * 1024
CHUNK = 512  # links read per step of the walk


class ChainBreak(ArchiverError):
    """A writer's chain does not walk cleanly from its head: nothing is rolled up."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


async def read_in_order(
    store: ObjectStore, keys: Sequence[str], concurrency: int
) -> list[bytes | None]:
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(key: str) -> bytes | None:
        async with semaphore:
            try:
                return await read_object(store, key)
            except KeyError:
                return None

    return list(await asyncio.gather(*(one(key) for key in keys)))


@dataclass
class WriterListing:
    """A writer's listing: link seqs, tokens, head; its rollups' records and entries."""

    seqs: list[int] = field(default_factory=list)
    tokens: dict[int, int] = field(default_factory=dict)  # seq -> size
    head: bool = False
    records: set[int] = field(default_factory=set)
    entries: set[int] = field(default_factory=set)


async def rollups_listed(store: ObjectStore, writer: str, chain: WriterListing) -> None:
    """Fill ``chain``'s rollup records and entries from the listing of its rollups."""
    async for obj in store.list(f"{ROLLUP_PREFIX}{writer}/"):
        rolled = parse_rollup_key(obj.key)
        if rolled is not None and rolled.writer == writer:
            if rolled.part == ROLLUP_RECORD:
                chain.records.add(rolled.n)
            elif rolled.part == ROLLUP_ENTRIES:
                chain.entries.add(rolled.n)


async def links_listed(
    store: ObjectStore, writer: str, chain: WriterListing, after: int | None
) -> None:
    """Fill ``chain``'s link seqs, tokens and head from the listing of its chain folder,
    after link ``after`` (what the last rollup covers is not listed again: 711,090 links
    in one folder at 5 million calls, their seqs and token sizes about 115 MB)."""
    start_after = link_key(writer, after) if after is not None else ""
    async for obj in store.list(f"{CHAIN_PREFIX}{writer}/", start_after=start_after):
        parsed = parse_chain_key(obj.key)
        if parsed is not None and parsed[0] == writer:
            if parsed[1] is None:
                chain.head = True
            else:
                chain.seqs.append(parsed[1])
        elif obj.key.endswith(".tsr"):
            stem = obj.key.rsplit("/", 1)[-1].removesuffix(".tsr")
            if stem.isascii() and stem.isdigit() and stamp_key(writer, int(stem)) == obj.key:
                chain.tokens[int(stem)] = obj.size
    chain.seqs.sort()


async def manifest_writers(store: ObjectStore) -> list[str]:
    """Every writer under ``_archiver/chain/``, one listing request each (each listing
    starts after the last writer's keys: not a listing of every link, 2.4 million keys
    with their tokens at 5 million calls). A folder there that holds no chain is
    rolled up as such: not at all."""
    writers: list[str] = []
    after = ""
    while True:
        key = None
        async for obj in store.list(CHAIN_PREFIX, start_after=after):
            key = obj.key
            break  # one key of the next writer is all this listing is for
        if key is None:
            return writers
        found = key[len(CHAIN_PREFIX) :].partition("/")[0]
        if not found:  # a folder marker, or a folder with no name: no writer; go past it
            after = key if key == CHAIN_PREFIX else f"{CHAIN_PREFIX}/{chr(0x10FFFF)}"
            continue
        writers.append(found)
        after = f"{CHAIN_PREFIX}{found}0"  # "0" sorts right after "/": past its keys


class Walk:
    """The links after the last rollup, checked in order up to the head; kept for the copy
    up to LINK_CACHE_BYTES."""

    def __init__(self, store: ObjectStore, writer: str, concurrency: int) -> None:
        self.store, self.writer, self.concurrency = store, writer, concurrency
        self.seqs: list[int] = []
        self.cache: dict[int, bytes] = {}
        self.cached = 0

    async def check(self, seqs: list[int], start: tuple[int, str] | None, head: Head) -> None:
        """ChainBreak unless ``seqs`` walk from ``start`` to the head, each naming the last."""
        tip = start
        for at in range(0, len(seqs), CHUNK):
            chunk = seqs[at : at + CHUNK]
            keys = [link_key(self.writer, s) for s in chunk]
            for seq, key, data in zip(
                chunk, keys, await read_in_order(self.store, keys, self.concurrency), strict=True
            ):
                link = self._parse(key, data)
                if (link.prev_seq, link.prev_sha256) != (tip or (None, None)):
                    expected = f"link {tip[0]} ({tip[1]})" if tip else "nothing (the first link)"
                    raise ChainBreak(
                        key,
                        f"it follows {link.prev_seq} ({link.prev_sha256}), not {expected}: "
                        "a link removed, altered or added beside the chain",
                    )
                if not link.manifest_key.startswith(MANIFEST_PREFIX):
                    raise ChainBreak(key, f"a link of {link.manifest_key}, not a manifest object")
                assert data is not None
                tip = (seq, sha256_hex(data))
                self.seqs.append(seq)
                if self.cached + len(data) <= LINK_CACHE_BYTES:
                    self.cache[seq] = data
                    self.cached += len(data)
        if tip != (head.seq, head.link_sha256):
            raise ChainBreak(
                head_key(self.writer),
                f"the head names link {head.seq} ({head.link_sha256}); the walk ends at {tip}",
            )

    def _parse(self, key: str, data: bytes | None) -> Link:
        if data is None:
            raise ChainBreak(key, "the link vanished while being read")
        try:
            link = Link.from_bytes(data)
        except ValueError as exc:
            raise ChainBreak(key, f"unreadable link: {exc}") from None
        if (link.writer, link.key) != (self.writer, key):
            raise ChainBreak(key, f"the link says it is {link.key}")
        return link

    async def links(self, seqs: Sequence[int]) -> list[bytes]:
        """The bytes of links already checked (from the cache, else read again)."""
        missing = [s for s in seqs if s not in self.cache]
        keys = [link_key(self.writer, s) for s in missing]
        again = dict(
            zip(missing, await read_in_order(self.store, keys, self.concurrency), strict=True)
        )
        out = []
        for seq in seqs:
            data = self.cache.pop(seq, None) or again.get(seq)
            if data is None:
                raise ChainBreak(link_key(self.writer, seq), "the link vanished while being read")
            out.append(data)
        return out
