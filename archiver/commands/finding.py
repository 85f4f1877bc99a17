"""Find one archived call for ``get`` and ``hold``: the local id index, then the manifest
objects it names.

The id index (:mod:`archiver.retrieval.local_index`) lives in the console's
SQLite file (``ARCHIVER_CONSOLE__INDEX_PATH``), a cache of the storage: before
each lookup it reads the manifest objects it has not seen (one listing of
``manifests/`` when nothing is new), so a machine that never saw the archive
builds it from the storage alone on its first ``get``, and later ones cost a
listing, an indexed SELECT and the read of the manifest object named. Where
that file cannot be opened (a read-only directory), the index is built in
memory for this one command, and a warning says so.

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

from archiver.index_db import IndexDatabase
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import decoded_lines, line_ids, read_object
from archiver.manifest.supersede import SUPERSEDE_PREFIX, parse_record_key
from archiver.retrieval.errors import CallNotFoundError, IntegrityError, IntegrityKind
from archiver.retrieval.index import confirm_linked, normalize_id, resolve
from archiver.retrieval.local_index import SCHEMA, IdIndex
from archiver.storage import ObjectStore
from archiver.storage.layout import (
    CHAIN_PREFIX,
    MANIFEST_PREFIX,
    link_key,
    parse_chain_key,
    parse_manifest_key,
)

log = logging.getLogger("archiver.get")


def _open(path: Path) -> IndexDatabase:
    try:
        return IndexDatabase(path, SCHEMA)
    except sqlite3.Error as exc:
        log.warning(
            "the local index %s cannot be opened (%s): built in memory for this command",
            path,
            exc,
        )
        return IndexDatabase(Path(":memory:"), SCHEMA)


async def find_call(
    store: ObjectStore, index_path: Path, ident: str, provider: str | None = None
) -> ManifestEntry:
    """The archived call ``ident`` names, checked against its manifest object.

    ``index_path`` is the local index's file (created if missing). Raises
    CallNotFoundError, AmbiguousIdError or IntegrityError as
    :func:`archiver.retrieval.index.resolve` does.
    """
    keys = await _manifests_of(store, index_path, ident)
    indexed: list[ManifestEntry] = []
    contents: dict[str, bytes] = {}
    for key in keys:
        contents[key] = await _read_manifest(store, key, ident)
        indexed += lines_with(key, contents[key], ident)
    try:
        return await resolve(store, ident, provider, indexed, contents)
    except CallNotFoundError:
        if not indexed:
            # The index names them but none has the line: unless each is the object
            # its chain link records (then the hash merely collided), the manifest
            # was changed after it was indexed, and the line may have been removed.
            for key, content in contents.items():
                await confirm_linked(store, key, content)
        await _no_manifest_missing(store)
        raise


async def _manifests_of(store: ObjectStore, index_path: Path, ident: str) -> list[str]:
    """The manifest keys the local index gives for ``ident``, brought up to date first.

    A file another process keeps locked for writing past SQLite's busy timeout
    (the console building its index in the same file) is left to it: the index
    is built in memory for this command instead of failing it.
    """
    db = _open(index_path)
    try:
        return await _ask(db, store, ident)
    except sqlite3.OperationalError as exc:
        if str(db.path) == ":memory:":
            raise
        log.warning("the local index %s is busy (%s): built in memory instead", db.path, exc)
    finally:
        db.close()
    memory = IndexDatabase(Path(":memory:"), SCHEMA)
    try:
        return await _ask(memory, store, ident)
    finally:
        memory.close()


async def _ask(db: IndexDatabase, store: ObjectStore, ident: str) -> list[str]:
    ids = IdIndex(db)
    await ids.refresh(store)
    return await ids.manifests_of(ident)


async def _read_manifest(store: ObjectStore, manifest_key: str, ident: str) -> bytes:
    try:
        return await read_object(store, manifest_key)
    except KeyError:
        raise IntegrityError(
            IntegrityKind.MISSING,
            f"manifest object {manifest_key} (indexed as holding {ident}) is missing",
        ) from None


def lines_with(manifest_key: str, content: bytes, ident: str) -> list[ManifestEntry]:
    """The lines of one manifest object whose sip_call_id or cdr id is ``ident`` (pure).

    Every line is decoded, but only those with the id are checked as manifest
    lines (a thousand-line object costs a lookup milliseconds, not tens); a
    line with the id that is not a valid one is left out, as
    :func:`~archiver.manifest.reader.parse_manifest` leaves it out.
    """
    wanted = normalize_id(ident)
    found = []
    for line in decoded_lines(content):
        if wanted in line_ids(line):
            try:
                found.append(ManifestEntry.from_line(line, manifest_key))
            except ValueError:
                continue
    return found


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
    # Supersede records are chained too (by archiver dedupe): their links name them.
    async for obj in store.list(SUPERSEDE_PREFIX):
        record = parse_record_key(obj.key)
        if record is not None:
            present.add(record)
    async for obj in store.list(CHAIN_PREFIX):
        link = parse_chain_key(obj.key)
        if link is None or link[1] is None or (link[0], link[1]) in present:
            continue
        raise IntegrityError(
            IntegrityKind.MISSING,
            f"manifest object {link[1]} of writer {link[0]} is missing (its chain link "
            f"{link_key(link[0], link[1])} is there): the call may have been in it",
        )
