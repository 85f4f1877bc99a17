"""The manifest batch writer: each batch object, its link, the head.

One JSON object per archived recording, in JSON Lines objects under
``manifests/date=YYYY-MM-DD/`` (the call's local date). Exactly once: a batch's
name, content and chain link are fixed in the state store before anything is
written, so a restart rewrites the identical objects instead of adding a
second line or forking the chain.

For each unwritten batch, in order:

1. the manifest object (conditional write: a rewrite of the same bytes is a no-op);
2. its chain link (conditional write, see :mod:`archiver.manifest.chain`);
3. the writer's head, moved forward to the link (never backward: a
   compare-and-swap, so processes flushing on one state cannot undo each other);
4. the batch marked written in the state.

A crash between any two steps is finished by the next run repeating them all.
That is four requests per batch of up to 1,000 lines: no request per
recording. ``get`` finds a call from a local index built from the manifests
themselves (see :mod:`archiver.retrieval.index`), so no per-id object is
written here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from archiver.errors import RetriableError
from archiver.manifest.chain import Head, Link, next_link, sha256_hex
from archiver.storage.base import ObjectStore
from archiver.storage.layout import CHAIN_CONTENT_TYPE, MANIFEST_CONTENT_TYPE, head_key

log = logging.getLogger("archiver.manifest")


class PendingBatch(Protocol):
    """A manifest batch fixed in the state: its object's key and bytes, and its link."""

    @property
    def id(self) -> int:
        """The batch's number in the state (its ``seq`` in the chain)."""

    @property
    def key(self) -> str:
        """The manifest object's key."""

    @property
    def content(self) -> bytes:
        """The manifest object's bytes (JSON Lines)."""

    @property
    def line_count(self) -> int:
        """How many lines the object holds."""

    @property
    def link(self) -> bytes | None:
        """The chain link's bytes; None for a batch cut before the chain existed."""


class BatchQueue(Protocol):
    """What the writer needs of the state store: the batches to write, in order.

    Defined here, below the state, so the manifest does not import the state
    (which imports the manifest); both state stores satisfy it.
    """

    async def writer_id(self) -> str:
        """This store's manifest writer id."""

    async def create_manifest_batches(self, writer: str, max_lines: int) -> int:
        """Fix the next batches (key, content, link) of the archived, unlisted jobs."""

    async def unwritten_manifest_batches(self) -> Sequence[PendingBatch]:
        """Batches created but not yet confirmed written, oldest first."""

    async def mark_manifest_written(self, batch_id: int) -> None:
        """The batch's object is in the storage."""


# Called with each new head once it is written (a trusted timestamp hooks in here).
HeadHook = Callable[[ObjectStore, Head], Awaitable[None]]


# Each failed attempt means another writer moved the head meanwhile; with a
# handful of processes sharing a state, a few attempts always settle it.
HEAD_ATTEMPTS = 20


def _parse_head(data: bytes, writer: str) -> Head | None:
    try:
        return Head.from_bytes(data)
    except ValueError:
        log.warning("chain head of writer %s is unreadable: it is rewritten", writer)
        return None


async def read_head(store: ObjectStore, writer: str) -> Head | None:
    """A writer's head, or None if it has none (or an unreadable one)."""
    found = await store.read_tagged(head_key(writer))
    return None if found is None else _parse_head(found.data, writer)


async def advance_head(store: ObjectStore, link_bytes: bytes) -> Head | None:
    """Point the writer's head at this link, unless it already names a later one.

    A compare-and-swap, so that processes flushing on one state (a ``run``
    and a ``backfill``, replicas around a change of leader) cannot move it
    back: the head is read with its tag and replaced only if that tag is
    still there (:meth:`~archiver.storage.base.ObjectStore.replace_bytes`);
    if another process wrote it meanwhile, it is read again and compared.
    Returns the head written, or None when it was already at or past the link
    (another process sharing the state wrote it, or this is a rewrite).
    """
    head = Head.of(link_bytes)
    key = head_key(head.writer)
    for _ in range(HEAD_ATTEMPTS):
        found = await store.read_tagged(key)
        current = None if found is None else _parse_head(found.data, head.writer)
        if current is not None and current.seq >= head.seq:
            return None
        expected = None if found is None else found.tag
        if await store.replace_bytes(
            key, head.to_bytes(), content_type=CHAIN_CONTENT_TYPE, expected=expected
        ):
            return head
        log.info("chain head of writer %s moved meanwhile: read again", head.writer)
    raise RetriableError(
        f"{store.description}: {key} changed {HEAD_ATTEMPTS} times while link {head.seq} "
        "was being made the head; the next flush tries again"
    )


async def append_chained(
    store: ObjectStore,
    writer: str,
    seq: int,
    key: str,
    content: bytes,
    lines: int,
    previous: tuple[int, str] | None,
) -> tuple[int, str]:
    """Write one record object of a chain that has no state behind it, then its link and head.

    The object first, then its link, then the head moves over it: stopped
    half-way, the chain is valid and shorter. Used by the writers that make a
    chain of their own in one go (supersede records, tombstones, repairs).
    Returns (seq, the link's SHA-256): the ``previous`` of the next call.
    """
    await store.put_bytes(
        key, content, sha256=sha256_hex(content), content_type=MANIFEST_CONTENT_TYPE
    )
    data = next_link(writer, seq, key, content, lines, previous).to_bytes()
    link_sha = sha256_hex(data)
    await store.put_bytes(
        Link.from_bytes(data).key, data, sha256=link_sha, content_type=CHAIN_CONTENT_TYPE
    )
    await advance_head(store, data)
    return seq, link_sha


async def flush_manifest(
    state: BatchQueue,
    store: ObjectStore,
    max_lines: int,
    on_head: HeadHook | None = None,
    on_written: Callable[[str, bytes], Awaitable[None]] | None = None,
) -> int:
    """Batch every archived-but-unlisted recording and write every unwritten batch.

    Safe to repeat after a crash at any point: see the module docstring.
    Returns the number of lines written.
    """
    await state.create_manifest_batches(await state.writer_id(), max_lines)
    lines = 0
    for batch in await state.unwritten_manifest_batches():
        written = await store.put_bytes(
            batch.key,
            batch.content,
            sha256=sha256_hex(batch.content),
            content_type=MANIFEST_CONTENT_TYPE,
        )
        if on_written is not None:
            # The local index of the manifests learns it from its bytes (no read back).
            await on_written(batch.key, batch.content)
        if batch.link is not None:
            link = Link.from_bytes(batch.link)
            await store.put_bytes(
                link.key,
                batch.link,
                sha256=sha256_hex(batch.link),
                content_type=CHAIN_CONTENT_TYPE,
            )
            head = await advance_head(store, batch.link)
            if head is not None and on_head is not None:
                await on_head(store, head)
        await state.mark_manifest_written(batch.id)
        lines += batch.line_count
        log.info("manifest %s: %d lines (%s)", batch.key, batch.line_count, written.outcome.value)
    return lines
