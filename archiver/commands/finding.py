"""Find one archived call for ``get`` and ``hold``: the local index of the manifests, then
the manifest itself.

The index is the console's SQLite file (``ARCHIVER_CONSOLE__INDEX_PATH``), a
cache of the storage: before each lookup it reads the manifest objects it has
not seen (one listing of ``manifests/`` when nothing is new), so a machine
that never saw the archive builds it from the storage alone on its first
``get``, and later ones cost a listing and an indexed SELECT. Where that file
cannot be opened (a read-only directory), the index is built in memory for
this one command, and a warning says so.

An id the index does not know is only "not found" if no manifest object is
missing: the chain's links name every manifest object ever written, so a
link whose manifest object is gone (deleted, or hidden behind a delete
marker) makes ``get`` refuse (IntegrityError, exit 5) rather than say the
call was never archived: it may have been in that object.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from archiver.console.db import Database
from archiver.console.index import CallIndex
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.layout import (
    CHAIN_PREFIX,
    MANIFEST_PREFIX,
    link_key,
    parse_chain_key,
    parse_manifest_key,
)
from archiver.retrieval.errors import CallNotFoundError, IntegrityError, IntegrityKind
from archiver.retrieval.index import resolve
from archiver.storage import ObjectStore

log = logging.getLogger("archiver.get")


def _open(path: Path) -> Database:
    try:
        return Database(path)
    except sqlite3.Error as exc:
        log.warning(
            "the local index %s cannot be opened (%s): built in memory for this command",
            path,
            exc,
        )
        return Database(Path(":memory:"))


async def find_call(
    store: ObjectStore, index_path: Path, ident: str, provider: str | None = None
) -> ManifestEntry:
    """The archived call ``ident`` names, checked against its manifest object.

    ``index_path`` is the local index's file (created if missing). Raises
    CallNotFoundError, AmbiguousIdError or IntegrityError as
    :func:`archiver.retrieval.index.resolve` does.
    """
    db = _open(index_path)
    try:
        calls = CallIndex(db)
        await calls.refresh(store)
        indexed = await calls.by_ident(ident)
    finally:
        db.close()
    try:
        return await resolve(store, ident, provider, indexed)
    except CallNotFoundError:
        await _no_manifest_missing(store)
        raise


async def _no_manifest_missing(store: ObjectStore) -> None:
    """IntegrityError if a chain link names a manifest object the storage no longer lists.

    Two listings and no read: a link's key and its manifest object's key both
    carry the writer and the sequence number.
    """
    present = set()
    async for obj in store.list(MANIFEST_PREFIX):
        parsed = parse_manifest_key(obj.key)
        if parsed is not None:
            present.add((parsed.writer, parsed.seq))
    async for obj in store.list(CHAIN_PREFIX):
        link = parse_chain_key(obj.key)
        if link is None or link[1] is None or (link[0], link[1]) in present:
            continue
        raise IntegrityError(
            IntegrityKind.MISSING,
            f"manifest object {link[1]} of writer {link[0]} is missing (its chain link "
            f"{link_key(link[0], link[1])} is there): the call may have been in it",
        )
