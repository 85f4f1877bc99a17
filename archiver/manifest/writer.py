"""The manifest batch writer: each batch object, its link, the head.

One JSON object per archived recording, in JSON Lines objects under
``manifests/date=YYYY-MM-DD/`` (the call's local date). Exactly once: a batch's
name, content and chain link are fixed in the state store before anything is
written, so a restart rewrites the identical objects instead of adding a
second line or forking the chain.

For each unwritten batch, in order:

1. the manifest object (conditional write: a rewrite of the same bytes is a no-op);
2. its chain link (conditional write, see :mod:`archiver.manifest.chain`);
3. the writer's head, moved forward to the link (never backward);
4. the batch marked written in the state.

A crash between any two steps is finished by the next run repeating them all.
That is four requests per batch of up to 1,000 lines: no request per
recording. ``get`` finds a call from a local index built from the manifests
themselves (see :mod:`archiver.retrieval.index`), so no per-id object is
written here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from archiver.manifest.chain import Head, Link, sha256_hex
from archiver.manifest.layout import CHAIN_CONTENT_TYPE, MANIFEST_CONTENT_TYPE, head_key
from archiver.state.base import StateStore
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.manifest")

# Called with each new head once it is written (a trusted timestamp hooks in here).
HeadHook = Callable[[ObjectStore, Head], Awaitable[None]]


async def read_head(store: ObjectStore, writer: str) -> Head | None:
    """A writer's head, or None if it has none (or an unreadable one)."""
    try:
        data = b"".join([chunk async for chunk in store.read(head_key(writer))])
    except KeyError:
        return None
    try:
        return Head.from_bytes(data)
    except ValueError:
        log.warning("chain head of writer %s is unreadable: it is rewritten", writer)
        return None


async def advance_head(store: ObjectStore, link_bytes: bytes) -> Head | None:
    """Point the writer's head at this link, unless it already names a later one.

    Returns the head written, or None when it was already at or past the link
    (another process sharing the state wrote it, or this is a rewrite).
    """
    head = Head.of(link_bytes)
    current = await read_head(store, head.writer)
    if current is not None and current.seq >= head.seq:
        return None
    await store.replace_bytes(
        head_key(head.writer), head.to_bytes(), content_type=CHAIN_CONTENT_TYPE
    )
    return head


async def flush_manifest(
    state: StateStore,
    store: ObjectStore,
    max_lines: int = 1000,
    on_head: HeadHook | None = None,
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
